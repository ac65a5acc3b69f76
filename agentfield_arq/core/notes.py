"""Notes on executions (AgentField's `app.note`): checked, stamped and stored with the
execution, so that they show in its status document and on the lifecycle stream."""

from __future__ import annotations

import logging

from agentfield_arq.core.keys import NOTE_MESSAGE_MAX_CHARS, NOTE_TAG_MAX_CHARS, NOTE_TAGS_MAX
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import encode, now_ms, rfc3339
from agentfield_arq.kernel.errors import ExecutionNotFound, InvalidRequest
from agentfield_arq.kernel.models import ExecutionNote, NoteRequest

logger = logging.getLogger(__name__)


def build_note(request: NoteRequest, stamp_ms: int) -> ExecutionNote:
    """The note to store: its message trimmed (unless it is all blank), checked against the
    caps, stamped now."""
    message = request.message.strip() or request.message  # a blank note is kept as sent
    if len(message) > NOTE_MESSAGE_MAX_CHARS:
        raise InvalidRequest(f"message: at most {NOTE_MESSAGE_MAX_CHARS} characters")
    if len(request.tags) > NOTE_TAGS_MAX:
        raise InvalidRequest(f"tags: at most {NOTE_TAGS_MAX}, got {len(request.tags)}")
    if any(not 1 <= len(tag) <= NOTE_TAG_MAX_CHARS for tag in request.tags):
        raise InvalidRequest(f"tags: each 1 to {NOTE_TAG_MAX_CHARS} characters")
    return ExecutionNote(
        message=message,
        tags=request.tags,
        timestamp=rfc3339(stamp_ms),
        agent_node_id=request.agent_node_id,
    )


async def add_note(store: ExecutionStore, execution_id: str, request: NoteRequest) -> ExecutionNote:
    """Store a note on `execution_id` (any status; notes expire with the execution)."""
    if not execution_id:
        raise ExecutionNotFound("no X-Execution-ID header names the execution the note is about")
    note = build_note(request, now_ms())
    if not await store.add_note(execution_id, encode(note)):
        raise ExecutionNotFound(f"execution '{execution_id[:100]}' not found")
    logger.info("note execution_id=%s tags=%s", execution_id, ",".join(note.tags))
    return note
