"""Public (non-API) automation URLs: the inbound workflow hooks at /hooks/<token>."""

urlpatterns: list = []
