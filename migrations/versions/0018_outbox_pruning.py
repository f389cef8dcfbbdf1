"""The outbox is pruned: an index to delete a pruned event's delivery log by the event.

The delivery worker deletes events older than ``CONGDONGSO_OUTBOX_KEEP_DAYS`` that every
webhook they go to has passed (api/events/webhooks.py ``prune``), and their attempts with
them; the log's only index was per webhook.

Revision ID: 0018
Revises: 0015
Create Date: 2026-11-28
"""

from api.migrate import execute_script

revision = "0018"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("CREATE INDEX webhook_delivery_event ON webhook_delivery (outbox_id);")


def downgrade() -> None:
    execute_script("DROP INDEX webhook_delivery_event;")
