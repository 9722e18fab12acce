"""Rubric versions as data: one `<version>.yaml` per version (see `services.risk.scoring.rubric`)."""
