// GgufFile: the read-only mapping, lookups, typed metadata getters and tensor byte ranges.
//
// open() maps the whole file PROT_READ / MAP_PRIVATE and parses it in place: no tensor data is
// read or copied (pages are touched only when a caller reads a tensor's bytes). A file that is
// truncated by another process while mapped can still raise SIGBUS on access; that is outside
// what a reader can check.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <optional>
#include <system_error>

#include "gguf-impl.h"

namespace moerun::gguf {

GgufFile::Impl::~Impl() {
    if (map != nullptr) ::munmap(map, map_len);
}

void GgufFile::Impl::fail(uint64_t offset, std::string_view field, const std::string &message) const {
    throw Error(path, offset, std::string(field), message);
}

GgufFile::GgufFile(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
GgufFile::GgufFile(GgufFile &&) noexcept = default;
GgufFile &GgufFile::operator=(GgufFile &&) noexcept = default;
GgufFile::~GgufFile() = default;

GgufFile GgufFile::open(const std::string &path) {
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), path + ": cannot open");
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        throw std::system_error(err, std::generic_category(), path + ": cannot stat");
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                path + ": not a regular file");
    }
    impl->size = static_cast<uint64_t>(st.st_size);
    if (impl->size > 0) {
        if (impl->size > SIZE_MAX) {
            ::close(fd);
            throw std::system_error(std::make_error_code(std::errc::file_too_large), path + ": cannot map");
        }
        impl->map_len = static_cast<size_t>(impl->size);
        void *p = ::mmap(nullptr, impl->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            const int err = errno;
            ::close(fd);
            throw std::system_error(err, std::generic_category(), path + ": cannot map");
        }
        impl->map = p;
        impl->base = static_cast<const uint8_t *>(p);
    }
    ::close(fd);
    impl->parse();
    return GgufFile(std::move(impl));
}

GgufFile GgufFile::from_memory(std::string name, std::span<const uint8_t> bytes) {
    auto impl = std::make_unique<Impl>();
    impl->path = std::move(name);
    impl->owned.assign(bytes.begin(), bytes.end());
    impl->base = impl->owned.data();
    impl->size = impl->owned.size();
    impl->parse();
    return GgufFile(std::move(impl));
}

void GgufFile::advise_random() const {
    if (impl_->map != nullptr) ::madvise(impl_->map, impl_->map_len, MADV_RANDOM);
}

void GgufFile::advise_willneed(uint64_t offset, uint64_t size) const {
    if (impl_->map == nullptr || offset >= impl_->size) return;
    const uint64_t page = 4096, start = offset / page * page;
    const uint64_t end = std::min(impl_->size, offset + size);
    ::madvise(static_cast<uint8_t *>(impl_->map) + start, static_cast<size_t>(end - start), MADV_WILLNEED);
}

namespace {

// The offset of `bytes` in the mapping [map, map + len) when the whole non-empty range lies
// inside it.
std::optional<uint64_t> mapped_offset(const void *map, size_t len, std::span<const uint8_t> bytes) {
    if (map == nullptr || bytes.empty()) return std::nullopt;
    const auto base = reinterpret_cast<uintptr_t>(map);
    const auto b = reinterpret_cast<uintptr_t>(bytes.data());
    if (b < base || b - base > len || bytes.size() > len - (b - base)) return std::nullopt;
    return b - base;
}

}  // namespace

void GgufFile::advise_willneed(std::span<const uint8_t> bytes) const {
    if (const auto off = mapped_offset(impl_->map, impl_->map_len, bytes))
        advise_willneed(*off, bytes.size());
}

uint64_t GgufFile::drop_pages(std::span<const uint8_t> bytes) const {
    if (!mapped_offset(impl_->map, impl_->map_len, bytes)) return 0;
    const auto b = reinterpret_cast<uintptr_t>(bytes.data());
    const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t start = (b + page - 1) / page * page, end = (b + bytes.size()) / page * page;
    if (end <= start) return 0;
    if (::madvise(reinterpret_cast<void *>(start), end - start, MADV_DONTNEED) != 0) return 0;
    return end - start;
}

const std::string &GgufFile::path() const {
    return impl_->path;
}
uint32_t GgufFile::version() const {
    return impl_->version;
}
uint32_t GgufFile::alignment() const {
    return impl_->alignment;
}
uint64_t GgufFile::data_offset() const {
    return impl_->data_offset;
}
uint64_t GgufFile::file_size() const {
    return impl_->size;
}
const std::vector<KeyValue> &GgufFile::metadata() const {
    return impl_->kv;
}
const std::vector<TensorInfo> &GgufFile::tensors() const {
    return impl_->tensors;
}

void GgufFile::fail(uint64_t offset, std::string_view field, const std::string &message) const {
    impl_->fail(offset, field, message);
}

const Value *GgufFile::find(std::string_view key) const {
    auto it = impl_->kv_index.find(key);
    return it == impl_->kv_index.end() ? nullptr : &impl_->kv[it->second].value;
}

const TensorInfo *GgufFile::find_tensor(std::string_view name) const {
    auto it = impl_->tensor_index.find(name);
    return it == impl_->tensor_index.end() ? nullptr : &impl_->tensors[it->second];
}

// ---- typed getters -------------------------------------------------------------------------

namespace {

[[noreturn]] void missing(const GgufFile &f, std::string_view key) {
    f.fail(kHeaderBytes, key, "required key is missing from the metadata");
}

[[noreturn]] void wrong_type(const GgufFile &f, std::string_view key, const Value &v,
                             std::string_view expected) {
    f.fail(v.offset, key,
           "expected " + std::string(expected) + ", found a " + std::string(value_type_name(v.type)) +
               (v.type == ValueType::ARRAY
                    ? " of " + std::string(value_type_name(std::get<Array>(v.v).elem_type))
                    : std::string()));
}

const Value &require(const GgufFile &f, std::string_view key) {
    const Value *v = f.find(key);
    if (v == nullptr) missing(f, key);
    return *v;
}

uint64_t as_uint(const GgufFile &f, std::string_view key, const Value &v) {
    if (!is_integer(v.type)) wrong_type(f, key, v, "an integer");
    if (const auto *u = std::get_if<uint64_t>(&v.v)) return *u;
    const int64_t i = std::get<int64_t>(v.v);
    if (i < 0) f.fail(v.offset, key, "expected a non-negative integer, found " + std::to_string(i));
    return static_cast<uint64_t>(i);
}

double as_float(const GgufFile &f, std::string_view key, const Value &v) {
    if (const auto *d = std::get_if<double>(&v.v); d && is_float(v.type)) return *d;
    if (!is_integer(v.type)) wrong_type(f, key, v, "a number");
    if (const auto *u = std::get_if<uint64_t>(&v.v)) return static_cast<double>(*u);
    return static_cast<double>(std::get<int64_t>(v.v));
}

}  // namespace

std::string_view GgufFile::get_string(std::string_view key) const {
    const Value &v = require(*this, key);
    if (v.type != ValueType::STRING) wrong_type(*this, key, v, "a string");
    return std::get<std::string_view>(v.v);
}

uint64_t GgufFile::get_uint(std::string_view key) const {
    return as_uint(*this, key, require(*this, key));
}

int64_t GgufFile::get_int(std::string_view key) const {
    const Value &v = require(*this, key);
    if (!is_integer(v.type)) wrong_type(*this, key, v, "an integer");
    if (const auto *i = std::get_if<int64_t>(&v.v)) return *i;
    const uint64_t u = std::get<uint64_t>(v.v);
    if (u > static_cast<uint64_t>(INT64_MAX))
        fail(v.offset, key, std::to_string(u) + " does not fit in int64");
    return static_cast<int64_t>(u);
}

double GgufFile::get_float(std::string_view key) const {
    return as_float(*this, key, require(*this, key));
}

bool GgufFile::get_bool(std::string_view key) const {
    const Value &v = require(*this, key);
    if (v.type != ValueType::BOOL) wrong_type(*this, key, v, "a bool");
    return std::get<bool>(v.v);
}

const Array &GgufFile::get_array(std::string_view key) const {
    const Value &v = require(*this, key);
    if (v.type != ValueType::ARRAY) wrong_type(*this, key, v, "an array");
    return std::get<Array>(v.v);
}

std::optional<std::string_view> GgufFile::get_string_opt(std::string_view key) const {
    if (find(key) == nullptr) return std::nullopt;
    return get_string(key);
}

uint64_t GgufFile::get_uint_or(std::string_view key, uint64_t fallback) const {
    const Value *v = find(key);
    return v ? as_uint(*this, key, *v) : fallback;
}

double GgufFile::get_float_or(std::string_view key, double fallback) const {
    const Value *v = find(key);
    return v ? as_float(*this, key, *v) : fallback;
}

bool GgufFile::get_bool_or(std::string_view key, bool fallback) const {
    return find(key) ? get_bool(key) : fallback;
}

const Array *GgufFile::get_array_opt(std::string_view key) const {
    return find(key) ? &get_array(key) : nullptr;
}

// ---- tensor data ---------------------------------------------------------------------------

namespace {

std::string tensor_field(const TensorInfo &t) {
    return "tensor '" + printable(t.name) + "'";
}

}  // namespace

std::span<const uint8_t> GgufFile::tensor_data(const TensorInfo &t) const {
    uint64_t end = 0;
    if (__builtin_add_overflow(t.file_offset, t.size, &end) || end > impl_->size)
        fail(t.info_offset, tensor_field(t),
             "data [" + std::to_string(t.file_offset) + ", +" + std::to_string(t.size) + ") is not inside " +
                 "this file (" + std::to_string(impl_->size) + " bytes)");
    return {impl_->base + t.file_offset, static_cast<size_t>(t.size)};
}

ExpertSlice GgufFile::expert_slice(const TensorInfo &t, uint64_t expert) const {
    // t: [n_expert, rows, cols] (ne = {cols, rows, n_expert}); expert e is rows * row_bytes(cols)
    // contiguous bytes at e * that.
    if (t.n_dims != 3)
        fail(t.info_offset, tensor_field(t),
             "not a stacked expert tensor: expected 3 dimensions {cols, rows, n_expert}, found " +
                 std::to_string(t.n_dims));
    if (expert >= t.ne[2])
        fail(t.info_offset, tensor_field(t),
             "expert " + std::to_string(expert) + " out of range: the tensor holds " +
                 std::to_string(t.ne[2]) + " experts");
    const auto row = quant::row_bytes(t.type, t.ne[0]);
    uint64_t per_expert = 0;
    uint64_t total = 0;
    if (!row || __builtin_mul_overflow(*row, t.ne[1], &per_expert) ||
        __builtin_mul_overflow(per_expert, t.ne[2], &total) || total != t.size)
        fail(t.info_offset, tensor_field(t),
             "size " + std::to_string(t.size) + " does not match its shape and type " +
                 std::string(quant::type_name(t.type)));
    const auto data = tensor_data(t);  // checks the tensor lies in this file
    (void)data;
    return ExpertSlice{t.file_offset + expert * per_expert, per_expert};
}

}  // namespace moerun::gguf
