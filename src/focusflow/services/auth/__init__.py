"""Authentication and access control: scoped tokens and a deny-by-default ACL."""
