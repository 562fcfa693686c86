"""The EC2-compatible query endpoint, ``/ec2/``: authenticate (SigV4), parse, run one action, answer XML."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from tenancy import services as tenancy_services
from tenancy.sigv4 import SignatureRefused, query_pairs

from .actions import ACTIONS, Caller, new_request_id
from .protocol import Ec2Error, Params, document, error_document

log = logging.getLogger(__name__)

MAX_PARAMETERS = 1000


def _headers(request) -> dict[str, str]:
    """The request's headers by lower-case name, as SigV4 signs them."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    # Django keeps Content-Type and Content-Length outside HTTP_*; request.headers has them too.
    return headers


def _parameters(request, body: bytes) -> Params:
    pairs = []
    try:
        # The query string as the signature reads it ("+" is a plus); a form body as forms are ("+" is a space).
        pairs += query_pairs(request.META.get("QUERY_STRING", ""))
        if len(pairs) > MAX_PARAMETERS:
            raise ValueError
        if body and request.content_type in ("", "application/x-www-form-urlencoded"):
            pairs += parse_qsl(
                body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_PARAMETERS
            )
    except UnicodeDecodeError:
        raise Ec2Error("InvalidParameterValue", "The request body must be UTF-8.") from None
    except ValueError:
        raise Ec2Error("InvalidParameterValue", f"At most {MAX_PARAMETERS} parameters per request.") from None
    return Params(pairs)


def _answer(body: bytes, status: int, request_id: str) -> HttpResponse:
    response = HttpResponse(body, status=status, content_type="text/xml;charset=UTF-8")
    response["x-amzn-RequestId"] = request_id
    return response


@csrf_exempt
def endpoint(request):
    request_id = new_request_id()
    try:
        try:
            body = request.body
        except RequestDataTooBig:
            raise Ec2Error("InvalidParameterValue", "The request is too large.", 413) from None
        if request.method not in ("GET", "POST"):
            raise Ec2Error("InvalidAction", f"The EC2 API takes GET and POST requests, not {request.method}.", 405)
        # Parsed before the signature is checked (a replay check depends on the action), but a
        # malformed request is refused only once the caller is known.
        try:
            params, malformed = _parameters(request, body), None
        except Ec2Error as error:
            params, malformed = None, error
        action = ACTIONS.get(params.action) if params else None
        try:
            credential = tenancy_services.ec2_authenticate(
                method=request.method,
                path=request.path,
                raw_query=request.META.get("QUERY_STRING", ""),
                headers=_headers(request),
                body=body,
                single_use=action is None or action.single_use(params),
            )
        except SignatureRefused as refused:
            raise Ec2Error(refused.code, refused.message, refused.status) from None
        if malformed is not None:
            raise malformed
        if action is None:
            raise Ec2Error(
                "InvalidAction",
                f"The action '{params.action[:80]}' is not valid for this web service; "
                f"supported: {', '.join(sorted(ACTIONS))}.",
            )
        params.refuse_unsupported(action.accepts)
        request.user = credential.user
        caller = Caller(request=request, credential=credential, endpoint=request.build_absolute_uri(request.path))
        body = action.run(caller, params)
        return _answer(document(params.action, request_id, body), 200, request_id)
    except Ec2Error as error:
        log.info("EC2 %s refused: %s", request.method, error.code)
        return _answer(error_document(error, request_id), error.status, request_id)
