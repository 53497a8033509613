"""Thin stacks: each reads its typed configuration and composes constructs."""
