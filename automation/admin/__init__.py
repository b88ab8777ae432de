from automation.admin import webhooks, workflows

__all__ = ["webhooks", "workflows"]
