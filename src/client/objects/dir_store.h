// The directory backend of ObjectStore (objects/object_store.h): a local directory plays the
// bucket, keys are relative paths under it. An object appears only whole: Put writes a temporary
// file `.custos-tmp-XXXXXX` (mode 0600) beside the target, fsyncs it, renames it over the target
// and fsyncs the directory. List skips those temporary files and keys may not name them.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "client/objects/object_store.h"

namespace custos::objects {

// kDirStoreTempPrefix starts the name of every temporary file the directory store writes.
inline constexpr char kDirStoreTempPrefix[] = ".custos-tmp-";

// OpenDirectoryStore returns a store over the existing directory `dir` (kNotFound if it does not
// exist, kInvalidArgument if it is not a directory). Keys that are empty, absolute, contain NUL,
// an empty, "." or ".." component, or a component starting with kDirStoreTempPrefix are refused
// with kInvalidArgument by every method. Get moves one range at a time (concurrency() is 1).
StatusOr<std::unique_ptr<ObjectStore>> OpenDirectoryStore(const std::string& dir);

}  // namespace custos::objects
