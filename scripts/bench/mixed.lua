-- Mixed load for the soak: reports, classifications, reads and e-mail intake.
-- Needs TOKEN (a CISO API token) and INTAKE (the intake token) in the environment.
local token = os.getenv("TOKEN")
local intake = os.getenv("INTAKE")
local n = 0
local desc = string.rep("Okänd inloggning på konto i verksamhetssystemet. ", 6)
local year = os.date("!%Y")
request = function()
  n = n + 1
  local k = n % 10
  if k < 4 then
    local body = '{"title":"Soak ' .. n .. '","description":"' .. desc .. '","sector":"Socialtjänsten"}'
    return wrk.format("POST", "/api/v1/deviations", {["Content-Type"] = "application/json"}, body)
  elseif k < 6 then
    local ref = string.format("AVV-%s-%04d", year, (n % 500) + 1)
    local body = '{"severity":"' .. ((n % 3 == 0) and "major" or "minor") ..
      '","category":"obehörig åtkomst","personal_data_breach":"no","nis2_significant":false,"rationale":"soak ' .. n .. '"}'
    return wrk.format("POST", "/api/v1/deviations/" .. ref .. "/classification",
      {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
  elseif k < 9 then
    local path = (k == 6) and "/api/v1/deviations?limit=50" or
      string.format("/api/v1/deviations/AVV-%s-%04d", year, (n % 500) + 1)
    return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token}, nil)
  else
    local msg = "From: Anna <anna" .. n .. "@kommunen.example>\r\nTo: avvikelse@kommunen.example\r\n" ..
      "Subject: Misstänkt nätfiske " .. n .. "\r\nMessage-ID: <soak-" .. n .. "-" .. os.time() .. "@kommunen.example>\r\n" ..
      "Date: " .. os.date("!%a, %d %b %Y %H:%M:%S +0000") .. "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" ..
      "Jag fick ett mejl som bad mig logga in.\r\n"
    return wrk.format("POST", "/api/v1/intake/email",
      {["Content-Type"] = "message/rfc822", ["Authorization"] = "Bearer " .. intake}, msg)
  end
end
