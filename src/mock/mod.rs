//! An offline LaraCopilot on loopback, for tests and demos (feature `mock`).
