"""Pure logic for the expired_domains asset: names, drop lists, lifecycle and score."""
