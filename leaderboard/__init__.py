"""Templates and static assets of the leaderboard site (installed as greval.leaderboard_templates)."""
