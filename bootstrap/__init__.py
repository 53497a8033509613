"""The delivery pipeline's own CDK app: GitHub OIDC trust and deploy roles, one stack per account.

Deployed once per account by an administrator (after ``cdk bootstrap``); see
docs/continuous-delivery.md. The platform app (``app.py``) never includes it.
"""
