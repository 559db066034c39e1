"""Contacting the borrower: where messages go, what reported outcomes mean, protections
and contact wishes, and notices the law requires. The rules themselves are
`duecourse.domain.compliance`."""
