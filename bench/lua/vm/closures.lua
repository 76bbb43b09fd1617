-- Closures and method calls: objects with a metatable class (__index),
-- method calls through it, closures made in a loop and called, a coroutine
-- generator.
-- Usage: closures.lua [SCALE]
local scale = tonumber((...)) or 1

local Account = {}
Account.__index = Account
function Account.new(balance)
        return setmetatable({balance = balance, ops = 0}, Account)
end
function Account:deposit(v)
        self.balance = self.balance + v
        self.ops = self.ops + 1
end
function Account:withdraw(v)
        if v <= self.balance then
                self.balance = self.balance - v
                self.ops = self.ops + 1
                return true
        end
        return false
end

local function counter()
        local n = 0
        return function(step)
                n = n + step
                return n
        end
end

local function gen(n)
        return coroutine.wrap(function()
                for i = 1, n do
                        coroutine.yield(i)
                end
        end)
end

local total = 0
for _ = 1, 20 * scale do
        local accts = {}
        for i = 1, 100 do
                accts[i] = Account.new(i)
        end
        for i = 1, 50000 do
                local a = accts[i % 100 + 1]
                a:deposit(i % 13)
                a:withdraw(i % 17)
        end
        local c = counter()
        local fs = {}
        for i = 1, 2000 do
                fs[i] = function() return c(i) end
        end
        for i = 1, #fs do
                total = total + fs[i]() % 1000
        end
        for v in gen(10000) do
                total = total + v
        end
        for i = 1, 100 do
                total = total + accts[i].balance + accts[i].ops
        end
end
print("closures", total)
