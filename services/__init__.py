"""The three services of the platform: intake, risk and alerts."""
