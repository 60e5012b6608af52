"""The domain: objects, rules and operations, free of HTTP and SQL."""
