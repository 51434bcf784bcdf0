"""The floor for webhook intake: a bare Django view that checks a Stripe signature and stores
the event in one row, served by the same gunicorn settings and database as the real webhook."""
