-- Argo CD health of a commerce.io resource (CommerceService, OutboxConnector, CatalogIndex).
-- The operator reports Kubernetes-style conditions (Ready, Reconciling, Stalled, Paused) and
-- status.observedGeneration; this maps them onto Argo CD's health states.

-- Reasons that no retry will fix: a person must change the spec or its environment.
local terminal = {
  PartitionDecreaseNotSupported = true,
  BindingNotFound = true,
  InvalidSpec = true,
}

local function condition(conditions, kind)
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function message(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local hs = {}
local annotations = (obj.metadata and obj.metadata.annotations) or {}
if annotations["commerce.io/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "Paused by the commerce.io/paused annotation"
  return hs
end
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report"
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "The operator has not reconciled generation " .. tostring(generation) .. " yet"
  return hs
end

local conditions = obj.status.conditions
local ready = condition(conditions, "Ready")
local reconciling = condition(conditions, "Reconciling")
local stalled = condition(conditions, "Stalled")
local paused = condition(conditions, "Paused")

if paused ~= nil and paused.status == "True" then
  hs.status = "Suspended"
  hs.message = message(paused, "Paused")
elseif stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = message(stalled, "Stalled")
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message(ready, "Ready")
elseif ready ~= nil and ready.status == "False" and terminal[ready.reason] then
  hs.status = "Degraded"
  hs.message = message(ready, ready.reason)
elseif reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = message(reconciling, message(ready, "Reconciling"))
elseif ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = message(ready, ready.reason or "Not ready")
else
  hs.status = "Progressing"
  hs.message = message(ready, "Waiting for Ready")
end
return hs
