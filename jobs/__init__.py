"""Thin entry points: each job parses arguments, loads config, builds the session, calls one library function."""
