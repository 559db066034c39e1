"""Legal: the case a loan opens in the legal stage (demand, cure, referral) and the
parent's mirror of it."""
