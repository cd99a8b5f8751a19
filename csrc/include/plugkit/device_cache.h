// Facts about a device that do not change while a process runs (attributes, a kernel's function
// attributes, occupancy), computed once per device and kept, so that an enqueue makes no host
// query of its own beyond cudaGetDevice. Keyed by the device id as well as by what was asked: a
// process may drive GPUs of different architectures, and the current device is the one the
// caller's stream belongs to.
//
//   host   currentDevice()
//          DeviceCache<Key, Value>::get(key, compute)   compute(device) runs once per (device, key)
//          deviceAttribute, kernelPtxVersion, ... in plugkit/launch.h are built on it.
//
// Thread-safe: TensorRT may enqueue from several threads (one execution context each). A value is
// computed outside the lock (compute may itself ask another cache); two threads that miss at once
// both compute it and the first one kept wins, which is harmless for values that are facts.
#pragma once

#include "plugkit/status.h"

#include <cuda_runtime_api.h>

#include <map>
#include <mutex>
#include <utility>

namespace plugkit
{

//! The calling thread's current CUDA device.
inline int currentDevice()
{
    int device = 0;
    PLUGKIT_CUDA_CHECK(cudaGetDevice(&device));
    return device;
}

//! Values computed once per (device, key). Hold one as a static of the function that asks
//! (its key then names what differs between calls: an attribute, a kernel, a block size).
template <typename Key, typename Value>
class DeviceCache
{
public:
    //! The value for `key` on the current device: `compute(device)` the first time, kept after.
    template <typename Compute>
    Value get(Key const& key, Compute&& compute)
    {
        int const device = currentDevice();
        {
            std::lock_guard<std::mutex> lock(mMutex);
            auto const found = mValues.find({device, key});
            if (found != mValues.end())
            {
                return found->second;
            }
        }
        Value value = compute(device);
        std::lock_guard<std::mutex> lock(mMutex);
        return mValues.emplace(std::make_pair(device, key), std::move(value)).first->second;
    }

private:
    std::mutex mMutex;
    std::map<std::pair<int, Key>, Value> mValues;
};

} // namespace plugkit
