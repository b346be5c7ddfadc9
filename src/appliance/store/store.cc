// OpenStore: the backend is chosen once, by the form of the location (store.h).
#include "appliance/store/store.h"

#include <string_view>
#include <utility>

namespace custos::store {

StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& url_or_path, StoreOptions options) {
  const std::string_view s = url_or_path;
  // The two URI schemes libpq accepts.
  if (s.starts_with("postgresql://") || s.starts_with("postgres://")) {
    return OpenPostgresStore(url_or_path, std::move(options));
  }
  return OpenSqliteStore(url_or_path, std::move(options));
}

}  // namespace custos::store
