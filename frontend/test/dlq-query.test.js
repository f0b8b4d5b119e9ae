import { test } from "node:test";
import assert from "node:assert/strict";
import {
  emptyFilters,
  entryUrl,
  filtersFromSearch,
  filtersToSearch,
  listUrl,
  localInputToMs,
  msToLocalInput,
  sameFilters,
} from "../src/dlq/query.js";

test("filters -> list URL: fixed order, empty filters left out, limit always, cursor when given", () => {
  const rows = [
    [emptyFilters(), {}, "api/dlq?limit=50"],
    [{ ...emptyFilters(), reason: "stale_timestamp" }, {}, "api/dlq?reason=stale_timestamp&limit=50"],
    [{ ...emptyFilters(), partner: "  courier-0001 " }, {}, "api/dlq?partner=courier-0001&limit=50"],
    [{ ...emptyFilters(), status: "new", since: 1000, until: 2000.7 }, { limit: 20 }, "api/dlq?status=new&since=1000&until=2000&limit=20"],
    [{ ...emptyFilters(), status: "bogus" }, {}, "api/dlq?limit=50"],
    [{ ...emptyFilters(), since: NaN, until: null }, { cursor: "" }, "api/dlq?limit=50"],
    [emptyFilters(), { cursor: "abc/+=" }, "api/dlq?limit=50&cursor=abc%2F%2B%3D"],
    [{ ...emptyFilters(), partner: "a&b=c d" }, {}, "api/dlq?partner=a%26b%3Dc+d&limit=50"],
  ];
  for (const [filters, options, expected] of rows) assert.equal(listUrl(filters, options), expected);
});

test("entry URLs encode the colon and anything else in an id", () => {
  assert.equal(entryUrl("2:1534"), "api/dlq/2%3A1534");
  assert.equal(entryUrl("2:1534", "replay"), "api/dlq/2%3A1534/replay");
  assert.equal(entryUrl("../x?y#z", "discard"), "api/dlq/..%2Fx%3Fy%23z/discard");
});

test("page URL round trip, junk ignored", () => {
  const filters = { reason: "impossible_speed", partner: "courier-7", status: "replayed", since: 10, until: 20 };
  const search = filtersToSearch(filters);
  assert.equal(search, "?reason=impossible_speed&partner=courier-7&status=replayed&since=10&until=20");
  assert.deepEqual(filtersFromSearch(search), filters);
  assert.equal(filtersToSearch(emptyFilters()), "");
  assert.deepEqual(filtersFromSearch("?status=nope&since=abc&until=&other=1"), emptyFilters());
  // The API reads since/until as integers: a pasted URL with a huge or fractional time never becomes "1e+21".
  assert.equal(listUrl(filtersFromSearch("?since=1e21&until=1.5e3")), "api/dlq?until=1500&limit=50");
  // ... nor one over the API's 15 digits (it answers 400 to `until=8640000000000000`, the latest Date).
  assert.equal(listUrl({ ...emptyFilters(), since: -8.7e15, until: 8.64e15 }), "api/dlq?limit=50");
  assert.equal(listUrl({ ...emptyFilters(), since: -1e15, until: 1e15 }), "api/dlq?limit=50");
  assert.equal(
    listUrl({ ...emptyFilters(), since: -999_999_999_999_999, until: 999_999_999_999_999.9 }),
    "api/dlq?since=-999999999999999&until=999999999999999&limit=50",
  );
  assert.deepEqual(filtersFromSearch("?since=1000000000000000&until=999999999999999"), {
    ...emptyFilters(),
    until: 999_999_999_999_999,
  });
  assert.ok(sameFilters({ ...emptyFilters(), partner: " x " }, { ...emptyFilters(), partner: "x" }));
  assert.ok(!sameFilters(emptyFilters(), { ...emptyFilters(), status: "new" }));
});

test("datetime-local values round trip in the local zone", () => {
  const ms = new Date(2024, 2, 4, 14, 5).getTime();
  assert.equal(msToLocalInput(ms), "2024-03-04T14:05");
  assert.equal(localInputToMs("2024-03-04T14:05"), ms);
  assert.equal(localInputToMs("2024-03-04T14:05:30"), ms + 30_000);
  assert.equal(localInputToMs(""), null);
  assert.equal(localInputToMs("yesterday"), null);
  assert.equal(msToLocalInput(null), "");
});
