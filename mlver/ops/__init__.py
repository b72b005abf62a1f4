"""One user-visible verb per module. Each returns a result dataclass and never prints."""
