"""The README's examples work as written."""

import re

from devtools.localstripe import ROOT

README = (ROOT / "README.md").read_text()


def curl_commands(text: str) -> list[str]:
    """Every curl command in the README's code, with continued lines joined."""
    code = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S))
    code += "\n" + "\n".join(re.findall(r"`([^`\n]*curl [^`\n]*)`", text))
    joined = re.sub(r"\\\n\s*", " ", code)
    return [line[line.index("curl ") :] for line in joined.splitlines() if "curl " in line]


def test_every_curl_example_that_sends_json_says_so():
    # -d/--data send JSON here; --data-urlencode (a query with -G, or Open311's form) does not.
    with_body = [c for c in curl_commands(README) if re.search(r"\s(-d|--data)\s", c)]
    assert with_body, "the README has curl examples with a body"
    missing = [c for c in with_body if "Content-Type: application/json" not in c]
    assert missing == []


def test_the_readme_shows_a_worked_refund():
    refunds = [c for c in curl_commands(README) if "/refunds" in c]
    assert refunds and all("Idempotency-Key" in c for c in refunds)
