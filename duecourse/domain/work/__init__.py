"""The agent work queue: tasks for people with SLAs, their lifecycle and completion."""
