"""The borrower's own page (`/b/<token>`): a signed link in every borrower message opens
a server-rendered page where the borrower sees the balance and acts through the same
workflow validators agents use. Actions are recorded as the borrower via the portal
(`duecourse.portal.actions.PORTAL_ACTOR`)."""
