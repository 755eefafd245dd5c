"""Reference backend: the rehearsal's stand-in for the application being cut over."""
