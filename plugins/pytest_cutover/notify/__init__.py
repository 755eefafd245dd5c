"""Notifications: tell users, stakeholders and the incident channel about the cutover's moments.

``channels`` delivers one message (JSON webhook, Slack incoming webhook, a command),
``templates`` renders it from the run's facts, ``plugin`` answers ``pytest_cutover_event``.
"""
