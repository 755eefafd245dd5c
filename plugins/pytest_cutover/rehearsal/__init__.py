"""The rehearsal stacks: a real Supabase-like cutover environment on one machine (embedded) or on containers."""
