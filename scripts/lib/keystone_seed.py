#!/usr/bin/python3
"""Create the ringfs test identities and the Swift catalog entry in a fresh Keystone v3.

Runs after `keystone-manage bootstrap` (which made the admin user/project, the
roles admin/member/reader and the identity endpoints).  Talks plain REST with the
standard library: one python process instead of ~15 `openstack` CLI calls, which
cost ~1.5 s each to start.  Idempotent: everything is looked up by name first,
passwords are re-set and endpoint URLs corrected on every run.

Creates (domain Default):
  project ringfs,  user ringfs  (ringfs-secret), role member on ringfs
  project other,   user other   (other-secret),  role member on other only
  project service, user swift   (SWIFT_PASSWORD), role admin on service
  service swift (object-store), endpoints public/internal/admin in REGION:
      PROXY_URL/v1/AUTH_%(project_id)s
Prints shell assignments of the project ids on stdout.
"""
import argparse
import json
import sys
import urllib.error
import urllib.request


class Api:
    def __init__(self, base, token=None):
        self.base = base.rstrip("/")
        self.token = token

    def call(self, method, path, body=None, ok=(200, 201, 204)):
        h = {"Content-Type": "application/json"}
        if self.token:
            h["X-Auth-Token"] = self.token
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw, status, hdrs = r.read(), r.status, r.headers
        except urllib.error.HTTPError as e:
            raw, status, hdrs = e.read(), e.code, e.headers
        if status not in ok:
            raise SystemExit("keystone %s %s -> %d %s" % (method, path, status, raw[:300]))
        return (json.loads(raw) if raw else {}), hdrs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT/v3")
    p.add_argument("--admin-password", required=True)
    p.add_argument("--swift-password", required=True)
    p.add_argument("--proxy-url", required=True, help="http://127.0.0.1:PROXYPORT")
    p.add_argument("--region", default="RegionOne")
    a = p.parse_args()

    api = Api(a.url)
    _, hdrs = api.call("POST", "/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": a.admin_password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}, ok=(201,))
    api.token = hdrs["X-Subject-Token"]

    def find(collection, **filters):
        q = "&".join("%s=%s" % kv for kv in filters.items())
        body, _ = api.call("GET", "/%s?%s" % (collection, q))
        items = body[collection]
        return items[0] if items else None

    def ensure(collection, key, match, create):
        item = find(collection, **match)
        if item is None:
            body, _ = api.call("POST", "/" + collection, {key: create}, ok=(201,))
            item = body[key]
        return item

    def project(name):
        return ensure("projects", "project", {"name": name, "domain_id": "default"},
                      {"name": name, "domain_id": "default", "enabled": True})

    def user(name, password, project_id):
        u = ensure("users", "user", {"name": name, "domain_id": "default"},
                   {"name": name, "domain_id": "default", "password": password,
                    "default_project_id": project_id, "enabled": True})
        api.call("PATCH", "/users/" + u["id"], {"user": {"password": password, "enabled": True}})
        return u

    roles = {r["name"]: r["id"] for r in api.call("GET", "/roles")[0]["roles"]}
    for needed in ("admin", "member"):
        if needed not in roles:
            body, _ = api.call("POST", "/roles", {"role": {"name": needed}}, ok=(201,))
            roles[needed] = body["role"]["id"]

    def grant(project_id, user_id, role):
        api.call("PUT", "/projects/%s/users/%s/roles/%s" % (project_id, user_id, roles[role]))

    p_ringfs, p_other, p_service = project("ringfs"), project("other"), project("service")
    u_ringfs = user("ringfs", "ringfs-secret", p_ringfs["id"])
    u_other = user("other", "other-secret", p_other["id"])
    u_swift = user("swift", a.swift_password, p_service["id"])
    grant(p_ringfs["id"], u_ringfs["id"], "member")
    grant(p_other["id"], u_other["id"], "member")
    grant(p_service["id"], u_swift["id"], "admin")

    svc = ensure("services", "service", {"type": "object-store", "name": "swift"},
                 {"type": "object-store", "name": "swift", "enabled": True,
                  "description": "ringfs all-in-one Swift"})
    url = a.proxy_url.rstrip("/") + "/v1/AUTH_%(project_id)s"
    existing = api.call("GET", "/endpoints?service_id=" + svc["id"])[0]["endpoints"]
    for iface in ("public", "internal", "admin"):
        ep = next((e for e in existing if e["interface"] == iface and e["region_id"] == a.region), None)
        if ep is None:
            api.call("POST", "/endpoints", {"endpoint": {
                "service_id": svc["id"], "interface": iface, "region_id": a.region,
                "url": url, "enabled": True}}, ok=(201,))
        elif ep["url"] != url:
            api.call("PATCH", "/endpoints/" + ep["id"], {"endpoint": {"url": url}})

    print("KEYSTONE_RINGFS_PROJECT_ID=%s" % p_ringfs["id"])
    print("KEYSTONE_OTHER_PROJECT_ID=%s" % p_other["id"])
    print("KEYSTONE_SERVICE_PROJECT_ID=%s" % p_service["id"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
