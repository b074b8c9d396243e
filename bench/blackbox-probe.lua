-- wrk script for bench/run.sh: drives blackbox_exporter's /probe endpoint
-- and counts the probes it reports as passed ("probe_success 1") or failed,
-- so a failing probe cannot pass for throughput.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   passed = 0
   failed = 0
end

function response(status, headers, body)
   if status == 200 and body:find("probe_success 1", 1, true) then
      passed = passed + 1
   else
      failed = failed + 1
   end
end

function done(summary, latency, requests)
   local p, f = 0, 0
   for _, t in ipairs(threads) do
      p = p + t:get("passed")
      f = f + t:get("failed")
   end
   local seconds = summary.duration / 1e6
   io.write(string.format(
      '{"probes":%d,"passed":%d,"failed":%d,"errors":%d,"window_s":%.3f,"probes_per_s":%.1f,' ..
      '"latency_ms":{"p50":%.3f,"p90":%.3f,"p99":%.3f,"max":%.3f}}\n',
      p + f, p, f,
      summary.errors.connect + summary.errors.read + summary.errors.write
         + summary.errors.status + summary.errors.timeout,
      seconds, (p + f) / seconds,
      latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
      latency:percentile(99) / 1e3, latency.max / 1e3))
end
