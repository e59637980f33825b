#!/usr/bin/env python3
"""Replays gen_events.py messages through the official Segment Python SDK (segment-analytics-python).

  python_send.py HOST WRITE_KEY < events.ndjson

Prints one JSON line: how many calls were made and how many the SDK reported as failed.
"""
import json
import sys
from datetime import datetime

import segment.analytics as analytics


def when(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def main():
    host, write_key = sys.argv[1], sys.argv[2]
    errors = []
    analytics.write_key = write_key
    analytics.host = host
    analytics.gzip = True
    analytics.max_retries = 3
    analytics.on_error = lambda error, batch: errors.append((str(type(error).__name__), len(batch)))
    calls = 0
    for line in sys.stdin:
        m = json.loads(line)
        common = dict(user_id=m.get("userId"), anonymous_id=m.get("anonymousId"), context=m.get("context"),
                      timestamp=when(m["timestamp"]), message_id=m.get("messageId"))
        kind = m["type"]
        if kind == "track":
            analytics.track(event=m["event"], properties=m.get("properties"), **common)
        elif kind == "identify":
            analytics.identify(traits=m.get("traits"), **common)
        elif kind == "group":
            analytics.group(group_id=m["groupId"], traits=m.get("traits"), **common)
        elif kind == "page":
            analytics.page(name=m.get("name"), properties=m.get("properties"), **common)
        else:
            continue
        calls += 1
    analytics.flush()
    analytics.shutdown()
    print(json.dumps({"calls": calls, "failed_batches": len(errors)}))


if __name__ == "__main__":
    main()
