-- load.lua: read the circuit without changing it. (memStore.Load)
-- KEYS[1..3] only; no memo. ARGV[1..4] as in lib.lua.
-- Reply: { "exists state failures successes probes last_failure opened_at
-- retry_at generation override_mode override_until override_at",
-- actor, reason }. Failures in window mode are counted with the window
-- of the policy last used on the circuit; a failure time later than now
-- is not one a script wrote, and is not counted.
local now = now_us()
local c = load(now)
if not c.exists then
  return { '0 0 0 0 0 0 0 0 0 0 0 0', '', '' }
end
local failures = c.f
if c.lw > 0 then
  failures = redis.call('ZCOUNT', W, '(' .. fmt(now - c.lw), fmt(now))
end
local probes = redis.call('ZCOUNT', P, '(' .. fmt(now), fmt(now + MAXDUR))
local fields = { 1, c.st, failures, c.s, probes, c.lf, c.oa, c.ra, c.g, c.om, c.ou, c.oat }
for i = 1, #fields do fields[i] = fmt(fields[i]) end
return { table.concat(fields, ' '), c.oac, c.ore }
