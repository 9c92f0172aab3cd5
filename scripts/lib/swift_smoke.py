#!/usr/bin/python3
"""Authenticate to Swift (tempauth v1 or Keystone v3) and do a PUT/GET/DELETE round trip.

Used by scripts/services.sh to decide that Swift is *really* ready: the proxy's
/healthcheck answers long before the account/container servers can serve a
request (the first PUT of a fresh account autocreates it), so readiness is "a
real object went in and came back".  Standard library only (runs with
/usr/bin/python3 or any python3).

  swift_smoke.py --auth tempauth --auth-url http://127.0.0.1:P/auth/v1.0 --user test:tester --key testing
  swift_smoke.py --auth keystone --auth-url http://127.0.0.1:K/v3 --user ringfs --key ringfs-secret \
                 --project ringfs [--region RegionOne] [--interface public]
  add --print-env to print SWIFT_STORAGE_URL=... and SWIFT_TOKEN=... instead of the round trip.
Exit status 0 on success; otherwise one line on stderr saying which step failed.
"""
import argparse
import json
import os
import sys
import urllib.error
import urllib.request


class Fail(Exception):
    pass


def request(method, url, headers=None, body=None, timeout=10):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
    except (urllib.error.URLError, OSError) as e:
        raise Fail("%s %s: %s" % (method, url, getattr(e, "reason", e)))


def auth_tempauth(a):
    st, hdrs, body = request("GET", a.auth_url, {"X-Auth-User": a.user, "X-Auth-Key": a.key})
    if st // 100 != 2:
        raise Fail("tempauth GET %s -> %d %s" % (a.auth_url, st, body[:200]))
    return hdrs["X-Storage-Url"], hdrs["X-Auth-Token"]


def auth_keystone(a):
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": a.user, "domain": {"name": a.user_domain}, "password": a.key}}},
        "scope": {"project": {"name": a.project, "domain": {"name": a.project_domain}}}}}
    url = a.auth_url.rstrip("/") + "/auth/tokens"
    st, hdrs, resp = request("POST", url, {"Content-Type": "application/json"},
                             json.dumps(body).encode())
    if st != 201:
        raise Fail("keystone POST %s -> %d %s" % (url, st, resp[:200]))
    token = hdrs["X-Subject-Token"]
    for svc in json.loads(resp)["token"].get("catalog", []):
        if svc["type"] != "object-store":
            continue
        for ep in svc["endpoints"]:
            if ep["interface"] == a.interface and ep.get("region_id", ep.get("region")) == a.region:
                return ep["url"], token
    raise Fail("no object-store endpoint (interface %s, region %s) in the catalog"
               % (a.interface, a.region))


def round_trip(storage_url, token):
    h = {"X-Auth-Token": token}
    cont = storage_url + "/ringfs-selftest"
    obj = cont + "/probe-%d" % os.getpid()
    data = os.urandom(4096)
    st, _, b = request("PUT", cont, h, b"")
    if st not in (201, 202):
        raise Fail("PUT %s -> %d %s" % (cont, st, b[:200]))
    st, _, b = request("PUT", obj, h, data)
    if st != 201:
        raise Fail("PUT %s -> %d %s" % (obj, st, b[:200]))
    st, _, b = request("GET", obj, h)
    if st != 200 or b != data:
        raise Fail("GET %s -> %d (%d bytes, expected the 4096 written)" % (obj, st, len(b)))
    st, _, b = request("DELETE", obj, h)
    if st not in (204, 404):
        raise Fail("DELETE %s -> %d %s" % (obj, st, b[:200]))
    # the container is left in place on purpose: deleting it right after the object
    # can race with the container listing update and answer 409.


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--auth", choices=["tempauth", "keystone"], required=True)
    p.add_argument("--auth-url", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--project")
    p.add_argument("--project-domain", default="Default")
    p.add_argument("--user-domain", default="Default")
    p.add_argument("--region", default="RegionOne")
    p.add_argument("--interface", default="public")
    p.add_argument("--print-env", action="store_true")
    a = p.parse_args()
    try:
        url, token = auth_tempauth(a) if a.auth == "tempauth" else auth_keystone(a)
        if a.print_env:
            print("SWIFT_STORAGE_URL=%s\nSWIFT_TOKEN=%s" % (url, token))
        else:
            round_trip(url, token)
    except Fail as e:
        print("swift smoke test failed: %s" % e, file=sys.stderr)
        return 1
    except (KeyError, ValueError) as e:
        print("swift smoke test failed: unexpected answer (%r)" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
