-- The consumer of the producer's ring (see ../lua-producer/main.lua): it takes the
-- three handles the producer passes (EVENT_IPC_OFFERED -> ipc.accept), then reads
-- records until the one of length 0, checking each one's number and text.
local ipc = require('cella.ipc')
local timer = require('cella.timer')

local P = 'org.cella.example.ipc_producer'
local SLOTS, SLOT = 16, 256
local got = {}

local function consume(ring, space, items)
  local n, bytes = 0, 0
  while true do
    assert(items:wait(30), 'the producer wrote no record for 30 s')
    local at = (n + 1) % SLOTS * SLOT
    local num, len = ring:get_u32(at), ring:get_u32(at + 4)
    assert(num == n + 1, string.format('record %d where %d was due', num, n + 1))
    if len == 0 then break end
    local s = ring:read(at + 8, len)
    assert(s:match('^record ' .. num .. ' from ' .. P:gsub('%.', '%%.') .. '$'), s)
    n, bytes = n + 1, bytes + len
    space:post()
  end
  print(string.format('consumer: %d records, %d bytes, in order, from %s', n, bytes,
                      ring:info().owner))
  ring:close() space:close() items:close()
end

-- The producer starts after this app (its manifest depends on it); if it never
-- passes its handles (it failed, or lacks a right), give up rather than wait on.
local deadline = timer.after(60, function()
  error('no ring from ' .. P .. ' within 60 s')
end)

ipc.on_offer(function(offer)
  local obj = ipc.accept(offer)
  got[offer.name:sub(#P + 2)] = obj
  if got.ring and got.space and got.items then
    ipc.on_offer(nil) -- nothing more to wait for once the records are read
    timer.cancel(deadline)
    consume(got.ring, got.space, got.items)
  end
end)
