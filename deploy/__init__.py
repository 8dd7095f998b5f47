"""Deploy tooling: Zappa's prebuild step, the IAM policies, the Lambda runner.

Never part of the Lambda package (zappa_settings.json excludes it).
"""
