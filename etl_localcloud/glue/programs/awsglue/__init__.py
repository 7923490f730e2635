"""A minimal stand-in for AWS Glue's ``awsglue`` library, as much as a Python shell script uses.

Placed last on a job's path by the local cloud, so a real ``awsglue`` on the path wins.
"""
