"""The collection case: the aggregate of one loan in collection, its state, what it is
told (commands), what it answers (status) and when a closed case may reopen."""
