"""Local simulators of the Chatwoot and Sendblue APIs, faithful to the notes in shared/api/."""
