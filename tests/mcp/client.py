"""An MCP client for tests/mcp.rs, on PyPI's `mcp` (the reference Python SDK).

    client.py URL [API_KEY]

Connects over streamable HTTP with the key as a bearer token, initializes,
then answers one JSON line on stdout per JSON line on stdin:
{"list": true} -> {"tools": [{"name", "description", "input_schema"}]}
{"call": NAME, "args": {...}} -> {"is_error": bool, "text": str}, or
{"exception": str} when the call itself failed (an HTTP refusal)
A failure to connect or initialize is {"failed": str} and exit status 1.
"""

import json
import sys
import traceback

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def leaves(e):
    """The innermost exceptions of an exception group, as text."""
    if isinstance(e, BaseExceptionGroup):
        return [t for sub in e.exceptions for t in leaves(sub)]
    return [f"{type(e).__name__}: {e}"]


async def serve(url, key):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write, *_):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                say({"server": init.server_info.name, "protocol": init.protocol_version})
                stdin = anyio.wrap_file(sys.stdin)
                async for line in stdin:
                    ask = json.loads(line)
                    if ask.get("list"):
                        tools = await session.list_tools()
                        say({"tools": [
                            {"name": t.name, "description": t.description,
                             "input_schema": t.input_schema}
                            for t in tools.tools]})
                    else:
                        try:
                            r = await session.call_tool(ask["call"], ask.get("args", {}))
                        except Exception as e:  # noqa: BLE001 - the test reads it
                            say({"exception": "; ".join(leaves(e))})
                            continue
                        say({"is_error": bool(r.is_error),
                             "text": "".join(getattr(c, "text", "") for c in r.content)})


def main():
    url = sys.argv[1]
    key = sys.argv[2] if len(sys.argv) > 2 else None
    try:
        anyio.run(serve, url, key)
    except BaseException as e:  # noqa: BLE001 - reported to the test, not hidden
        say({"failed": "; ".join(leaves(e))})
        traceback.print_exc(file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
