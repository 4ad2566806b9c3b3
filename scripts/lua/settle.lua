-- settle.lua: settle a write call (admit, record, apply) whose caller did
-- not read the reply: its round trip timed out or its connection dropped,
-- so the call may have run, may run later, or may never run. The store
-- sends this with the same call id. It stands alone (lib.lua is not
-- prepended): it reads no circuit field.
-- KEYS[1] the circuit's probe leases, KEYS[2] the call's reply memo.
-- ARGV[1] memo TTL (ms), ARGV[2] the probe id the call's caller held
-- (a record of a probe; 0: none).
-- If the call ran and changed the circuit, its memo is there: an
-- admission's probe lease is released (its caller never ran the probe)
-- and the memo comes back, so the store can report the transition the
-- call made. Otherwise a tombstone takes the memo's place, so that the
-- call, if it runs later, finds a memo and changes nothing; the probe
-- lease of a record is released then (its outcome will never count).
-- Reply: "0" (the call changed nothing, and never will) or "1 <memo>".
local P, R = KEYS[1], KEYS[2]
local TOMBSTONE = 'settled'

local function num(i, name)
  local v = ARGV[i]
  if type(v) ~= 'string' or not string.match(v, '^%d+$') or #v > 16 then
    error('TRIPLINE_BADARG ' .. name .. ' (ARGV[' .. i .. ']) is not a number', 0)
  end
  return v
end
local memo_ms = num(1, 'memo TTL')
local probe = num(2, 'probe')
if memo_ms == '0' then error('TRIPLINE_BADARG memo TTL (ARGV[1]) is 0', 0) end

local m = redis.call('GET', R)
if m == TOMBSTONE then
  return '0'
end
if not m then
  redis.call('SET', R, TOMBSTONE, 'PX', memo_ms)
  if probe ~= '0' then redis.call('ZREM', P, probe) end
  return '0'
end
-- An admission's memo: "allowed state generation probe ...". Probe ids
-- are never reused by a circuit, so the lease goes whatever the
-- generation is now.
local allowed, state, _, leased = string.match(m, '^(%d+) (%d+) (%d+) (%d+) ')
if allowed == '1' and state == '2' and leased ~= '0' then
  redis.call('ZREM', P, leased)
end
return '1 ' .. m
