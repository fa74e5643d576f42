from drf_spectacular.extensions import OpenApiAuthenticationExtension


class CronSecretAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "margins.authentication.CronSecretAuthentication"
    name = "CronSecret"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "CRON_SECRET (GET /api/stripe/revenue-sync only)"}
