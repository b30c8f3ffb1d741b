"""Direct uploads: the client sends files straight to S3 with a presigned POST, not through the API.

``POST /v1/uploads`` returns a URL and form fields (an S3 POST policy, boto3
``generate_presigned_post``) that allow exactly one key, ``clients/<client_id>/uploads/<id>``, and
1..MAX_UPLOAD_BYTES bytes (``content-length-range``): the store itself refuses anything else, so a
client can neither write outside its prefix nor send a huge file. SeaweedFS (tests), MinIO
(compose) and AWS all enforce POST policies. The upload id is then a batch item (``{"upload": id}``)
or its key a job's ``input.key``.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sqlalchemy import func

from api.auth import owned_or_404
from api.deps import ClientDep
from api.openapi import errors
from api.schemas import UploadCreate, UploadObject
from db.models import Upload
from db.session import session_scope
from portrait.settings import get_settings
from portrait.storage import get_storage, upload_key

router = APIRouter(tags=["uploads"])


@router.post("/v1/uploads", status_code=201, response_model=UploadObject)
def create_upload(client: ClientDep, body: UploadCreate | None = None) -> UploadObject:
    """A presigned POST for one file. Send ``fields`` then the file as the last part, named ``file``."""
    settings = get_settings()
    uid = uuid.uuid4()
    key = upload_key(client.id, uid)
    url, fields, expires = get_storage().presign_post(key, settings.max_upload_bytes, settings.upload_url_ttl_s)
    with session_scope() as s:
        up = Upload(id=uid, client_id=client.id, key=key, filename=body.filename if body else None,
                    max_bytes=settings.max_upload_bytes, url_expires_at=expires, created_at=func.now())
        s.add(up)
        s.flush()
        s.refresh(up)
    return UploadObject(id=uid, key=key, filename=up.filename, max_bytes=up.max_bytes, created_at=up.created_at,
                        url=url, fields=fields, expires_at=expires)


@router.get("/v1/uploads/{upload_id}", response_model=UploadObject, responses=errors("not_found"))
def get_upload(upload_id: uuid.UUID, client: ClientDep) -> UploadObject:
    """Whether the file has arrived, and its size."""
    up = owned_or_404(Upload, upload_id, client, "upload")
    size = get_storage().size(up.key)
    return UploadObject(id=up.id, key=up.key, filename=up.filename, max_bytes=up.max_bytes,
                        created_at=up.created_at, uploaded=size is not None, size=size)
