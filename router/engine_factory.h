// The one engine factory of specserve-router and specserve-serve: an engine per
// speculation mode in use (a scheduler slot), all over the same draft and target
// backends (gRPC clients in the router, in-process workers in specserve-serve).
// Slot adapters (slot_backends.h) keep the sequence ids of the engines apart.
#pragma once

#include "common/speculation/backends.h"
#include "common/speculation/spec_engine.h"
#include "router/scheduler.h"

namespace specserve {

// `draft` may be null (no speculation). The backends must outlive every engine
// made; `base` gives every option but the speculation mode.
EngineFactory MakeEngineFactory(DraftBackend* draft, TargetBackend& target, ModelFacts facts,
                                SpecEngineOptions base);

}  // namespace specserve
