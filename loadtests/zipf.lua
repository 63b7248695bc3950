-- wrk script: GET <prefix><token> with tokens drawn from a Zipf distribution.
--
--   wrk -t2 -c64 -d20s --latency -s loadtests/zipf.lua http://127.0.0.1:8080 -- \
--       TOKENS_FILE [ZIPF_S=1.1] [SEQUENCE=200000] [PREFIX=/c/]
--
-- TOKENS_FILE holds one token per line (anything after a tab is ignored).
-- Line k has rank k (the file should be shuffled). Each wrk thread
-- precomputes SEQUENCE requests sampled with P(rank k) ~ 1/k^s and cycles
-- through them, so the per-request Lua cost is one table lookup.
--
-- With the environment variable WRK_STRICT=1, a response() callback counts
-- every status that is not 302 or 307 (for PREFIX /c/) or 200 (for /o/)
-- exactly. It costs some throughput, since wrk then hands headers and body
-- to Lua; without it only wrk's own counter (status >= 400, plus socket
-- errors) is available. (wrk decides whether to call response() from the
-- script as loaded, before init() sees the arguments, hence the env var.)
--
-- Every request carries a User-Agent drawn at random from USER_AGENTS below
-- (real browsers and mail clients, plus two security scanners), as real
-- traffic does: the service classifies each hit's user agent. Set
-- WRK_UA=none to send no User-Agent header at all (the figures before
-- 2026-12-01 were measured that way).
--
-- done() prints one line `WRK_JSON {...}` with requests, duration, errors
-- and latency percentiles in microseconds, for run.sh to parse.

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

local USER_AGENTS = {
   "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
   "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
   "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
   "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
   "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
   "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
   "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17531; Pro)",
   "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1",
   "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
   "Mozilla/5.0 (Linux; Android 14; SM-S911B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.82 Mobile Safari/537.36",
   "Barracuda Sentinel (EE)",
   "Mozilla/5.0 (compatible; urlscan.io-bot/1.0; +https://urlscan.io/about)",
}
local send_ua = os.getenv("WRK_UA") ~= "none"

local requests_list = {}
local n_requests = 0
local idx = 0
local strict = os.getenv("WRK_STRICT") == "1"
local want_status = { [302] = true, [307] = true }
unexpected = 0

local function load_tokens(path)
   local tokens = {}
   local f = assert(io.open(path, "r"), "cannot open " .. path)
   for line in f:lines() do
      local tok = line:match("^([^\t]+)")
      if tok and #tok > 0 then
         tokens[#tokens + 1] = tok
      end
   end
   f:close()
   assert(#tokens > 0, "no tokens in " .. path)
   return tokens
end

function init(args)
   local path = args[1] or error("usage: -- TOKENS_FILE [ZIPF_S] [SEQUENCE] [PREFIX]")
   local s = tonumber(args[2] or "1.1")
   local sequence = tonumber(args[3] or "200000")
   local prefix = args[4] or "/c/"
   if prefix == "/o/" then want_status = { [200] = true } end
   local tokens = load_tokens(path)
   local n = #tokens
   -- Cumulative weights for ranks 1..n.
   local cdf = {}
   local total = 0
   for k = 1, n do
      total = total + 1 / (k ^ s)
      cdf[k] = total
   end
   math.randomseed(os.time() * 1000 + (id or 0) * 7919)
   for i = 1, sequence do
      local u = math.random() * total
      local lo, hi = 1, n
      while lo < hi do
         local mid = math.floor((lo + hi) / 2)
         if cdf[mid] < u then lo = mid + 1 else hi = mid end
      end
      local headers = nil
      if send_ua then headers = { ["User-Agent"] = USER_AGENTS[math.random(#USER_AGENTS)] } end
      requests_list[i] = wrk.format("GET", prefix .. tokens[lo], headers)
   end
   n_requests = sequence
end

function request()
   idx = idx + 1
   if idx > n_requests then idx = 1 end
   return requests_list[idx]
end

if strict then
   function response(status, headers, body)
      if not want_status[status] then
         unexpected = unexpected + 1
      end
   end
end

function done(summary, latency, requests)
   local unexp = "null"
   if strict then
      local n = 0
      for _, t in ipairs(threads) do
         n = n + (tonumber(t:get("unexpected")) or 0)
      end
      unexp = tostring(n)
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"rps":%.1f,' ..
      '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
      '"unexpected_status":%s,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,"stdev_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes, summary.requests / (summary.duration / 1e6),
      e.connect, e.read, e.write, e.status, e.timeout,
      unexp,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
      latency.max, latency.mean, latency.stdev))
end
