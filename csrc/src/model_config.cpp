// A strict JSON reader for the one document libfastsep reads (the fastsep_config metadata of an ONNX export) and the
// validation of python/fastsep/models/config.py (validate: types first, then stem names, bounds, words), so a hostile
// or damaged file is one ModelError line, never a crash. The input is bounded in size and nesting depth.
#include "model_config.hpp"

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "fastsep/error.hpp"

namespace fastsep {
namespace capi {

namespace {

constexpr size_t kMaxBytes = size_t(1) << 20;  // config.py MAX_CONFIG_BYTES (a config is about 1 kB)
constexpr int kMaxDepth = 32;
constexpr int kMaxStems = 16;                 // config.py MAX_STEMS
constexpr int64_t kMaxT = 4096;               // MAX_T
constexpr int64_t kMaxBinsPerSegment = 1 << 22;
constexpr int64_t kMaxOverlap = 16;
constexpr int64_t kMaxFilters = 4096;
constexpr double kMaxExponent = 8.0;
constexpr size_t kMaxName = 255;

[[noreturn]] void fail(const std::string& what) { throw ModelError("malformed fastsep model config: " + what); }

struct Value {
    enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
    bool boolean = false;
    bool integer = false;  // a number written without fraction or exponent (Python's json gives an int)
    int64_t i = 0;         // integer: the value, saturated at the int64 range
    double d = 0.0;
    std::string s;
    std::vector<Value> items;
    std::vector<std::pair<std::string, Value>> members;
};

class Parser {
public:
    explicit Parser(const std::string& text) : p_(text.data()), end_(text.data() + text.size()) {}

    Value document() {
        Value v = value(0);
        skip_space();
        if (p_ != end_) fail("not valid JSON (extra data after the value)");
        return v;
    }

private:
    const char* p_;
    const char* end_;

    void skip_space() {
        while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
    }
    bool literal(const char* word) {
        const char* q = p_;
        for (; *word; ++word, ++q)
            if (q == end_ || *q != *word) return false;
        p_ = q;
        return true;
    }

    Value value(int depth) {
        if (depth > kMaxDepth) fail("JSON nested too deeply");
        skip_space();
        if (p_ == end_) fail("not valid JSON (it ends early)");
        Value v;
        switch (*p_) {
        case '{': return object(depth);
        case '[': return array(depth);
        case '"':
            v.kind = Value::String;
            v.s = string();
            return v;
        case 't':
        case 'f':
        case 'n':
            if (literal("true")) {
                v.kind = Value::Bool, v.boolean = true;
            } else if (literal("false")) {
                v.kind = Value::Bool;
            } else if (!literal("null")) {
                fail("not valid JSON (an unknown word)");
            }
            return v;
        default: return number();
        }
    }

    Value object(int depth) {
        Value v;
        v.kind = Value::Object;
        ++p_;
        skip_space();
        if (p_ != end_ && *p_ == '}') {
            ++p_;
            return v;
        }
        std::set<std::string> keys;
        for (;;) {
            skip_space();
            if (p_ == end_ || *p_ != '"') fail("not valid JSON (a key expected)");
            std::string key = string();
            if (!keys.insert(key).second) fail("field '" + key.substr(0, 60) + "' appears twice");
            skip_space();
            if (p_ == end_ || *p_ != ':') fail("not valid JSON (':' expected)");
            ++p_;
            v.members.emplace_back(std::move(key), value(depth + 1));
            skip_space();
            if (p_ != end_ && *p_ == ',') {
                ++p_;
                continue;
            }
            if (p_ != end_ && *p_ == '}') {
                ++p_;
                return v;
            }
            fail("not valid JSON (',' or '}' expected)");
        }
    }

    Value array(int depth) {
        Value v;
        v.kind = Value::Array;
        ++p_;
        skip_space();
        if (p_ != end_ && *p_ == ']') {
            ++p_;
            return v;
        }
        for (;;) {
            v.items.push_back(value(depth + 1));
            skip_space();
            if (p_ != end_ && *p_ == ',') {
                ++p_;
                continue;
            }
            if (p_ != end_ && *p_ == ']') {
                ++p_;
                return v;
            }
            fail("not valid JSON (',' or ']' expected)");
        }
    }

    static void utf8(std::string& out, uint32_t cp) {
        if (cp < 0x80) {
            out += char(cp);
        } else if (cp < 0x800) {
            out += char(0xC0 | (cp >> 6));
            out += char(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += char(0xE0 | (cp >> 12));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        } else {
            out += char(0xF0 | (cp >> 18));
            out += char(0x80 | ((cp >> 12) & 0x3F));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        }
    }

    uint32_t hex4() {
        if (end_ - p_ < 4) fail("not valid JSON (a short \\u escape)");
        uint32_t v = 0;
        for (int k = 0; k < 4; ++k) {
            const char c = *p_++;
            v <<= 4;
            if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
            else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
            else fail("not valid JSON (a bad \\u escape)");
        }
        return v;
    }

    std::string string() {
        ++p_;  // the opening quote
        std::string out;
        for (;;) {
            if (p_ == end_) fail("not valid JSON (an unterminated string)");
            const unsigned char c = static_cast<unsigned char>(*p_++);
            if (c == '"') return out;
            if (c < 0x20) fail("not valid JSON (a control character in a string)");
            if (c != '\\') {
                out += char(c);
                continue;
            }
            if (p_ == end_) fail("not valid JSON (an unterminated string)");
            const char e = *p_++;
            switch (e) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '/': out += '/'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                uint32_t cp = hex4();
                if (cp >= 0xD800 && cp < 0xDC00) {  // a surrogate pair
                    if (end_ - p_ < 6 || p_[0] != '\\' || p_[1] != 'u') fail("not valid JSON (a lone surrogate)");
                    p_ += 2;
                    const uint32_t lo = hex4();
                    if (lo < 0xDC00 || lo >= 0xE000) fail("not valid JSON (a lone surrogate)");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp < 0xE000) {
                    fail("not valid JSON (a lone surrogate)");
                }
                utf8(out, cp);
                break;
            }
            default: fail("not valid JSON (a bad escape in a string)");
            }
        }
    }

    Value number() {
        // JSON's grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
        const char* start = p_;
        bool integer = true;
        if (p_ != end_ && *p_ == '-') ++p_;
        if (p_ == end_ || !(*p_ >= '0' && *p_ <= '9')) fail("not valid JSON (an unexpected character)");
        if (*p_ == '0') {
            ++p_;
        } else {
            while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        }
        if (p_ != end_ && *p_ == '.') {
            integer = false;
            ++p_;
            if (p_ == end_ || !(*p_ >= '0' && *p_ <= '9')) fail("not valid JSON (a bad number)");
            while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        }
        if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
            integer = false;
            ++p_;
            if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
            if (p_ == end_ || !(*p_ >= '0' && *p_ <= '9')) fail("not valid JSON (a bad number)");
            while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        }
        const std::string lexeme(start, p_);
        Value v;
        v.kind = Value::Number;
        v.integer = integer;
        errno = 0;
        v.d = std::strtod(lexeme.c_str(), nullptr);  // overflow: +-inf, as Python's json
        if (integer) {
            errno = 0;
            const long long i = std::strtoll(lexeme.c_str(), nullptr, 10);  // saturates: out of every bound below
            v.i = static_cast<int64_t>(i);
        }
        return v;
    }
};

std::string short_repr(const Value& v) {
    std::string text;
    switch (v.kind) {
    case Value::Null: text = "None"; break;
    case Value::Bool: text = v.boolean ? "True" : "False"; break;
    case Value::Number: text = v.integer ? std::to_string(v.i) : std::to_string(v.d); break;
    case Value::String: text = "'" + v.s + "'"; break;
    case Value::Array: text = "a list"; break;
    case Value::Object: text = "an object"; break;
    }
    for (char& c : text)
        if (static_cast<unsigned char>(c) < 0x20) c = '?';
    return text.size() <= 60 ? text : text.substr(0, 57) + "...";
}

// Python's len() and isprintable() on UTF-8 text, approximately: code points, no C0/C1 controls or DEL.
size_t code_points(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}
bool printable(const std::string& s) {
    for (size_t k = 0; k < s.size(); ++k) {
        const unsigned char c = static_cast<unsigned char>(s[k]);
        if (c < 0x20 || c == 0x7f) return false;
        // U+0080..U+009F are C2 80..C2 9F
        if (c == 0xC2 && k + 1 < s.size() && static_cast<unsigned char>(s[k + 1]) < 0xA0) return false;
    }
    return true;
}

bool stem_name_ok(const std::string& n) {
    if (n.empty() || n.size() > 64 || n == "." || n == "..") return false;
    for (char c : n)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.'))
            return false;
    return true;
}

std::string lower(std::string s) {
    for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    return s;
}

std::string join(const std::vector<std::string>& parts) {
    std::string s;
    for (const auto& p : parts) s += (s.empty() ? "" : "; ") + p;
    return s;
}

}  // namespace

ModelConfig parse_model_config(const std::string& json) {
    if (json.size() > kMaxBytes) fail("larger than 1 MiB");
    const Value doc = Parser(json).document();
    if (doc.kind != Value::Object) fail("a JSON object expected");

    static const char* const kFields[] = {"name", "instruments", "F", "T", "frame_length", "frame_step",
                                          "sample_rate", "n_channels", "separation_exponent", "mask_extension",
                                          "model_type", "conv_activation", "deconv_activation", "conv_n_filters",
                                          "model_dir"};
    const Value* field[15] = {};
    for (const auto& m : doc.members) {
        int k = 0;
        while (k < 15 && m.first != kFields[k]) ++k;
        if (k == 15) fail("unknown field '" + m.first.substr(0, 57) + "'");
        field[k] = &m.second;
    }
    if (!field[0]) fail("no 'name'");
    if (!field[1]) fail("no 'instruments'");

    ModelConfig cfg;
    const Value& name = *field[0];
    if (name.kind != Value::String || code_points(name.s) < 1 || code_points(name.s) > kMaxName ||
        !printable(name.s))
        throw ModelError("config name " + short_repr(name) + " must be 1 to 255 printable characters");
    cfg.name = name.s;

    // types first: the bounds compare numbers
    std::vector<std::string> problems;
    int64_t ints[6] = {cfg.F, cfg.T, cfg.frame_length, cfg.frame_step, cfg.sample_rate, cfg.n_channels};
    for (int k = 0; k < 6; ++k) {
        const Value* v = field[2 + k];
        if (!v) continue;
        if (v->kind == Value::Number && v->integer) ints[k] = v->i;
        else problems.push_back(std::string(kFields[2 + k]) + " must be an integer, not " + short_repr(*v));
    }
    if (const Value* v = field[8]) {
        if (v->kind == Value::Number && std::isfinite(v->d)) cfg.separation_exponent = v->d;
        else problems.push_back("separation_exponent must be a finite number, not " + short_repr(*v));
    }
    std::string* words[5] = {&cfg.mask_extension, &cfg.model_type, &cfg.conv_activation, &cfg.deconv_activation,
                             &cfg.model_dir};
    for (int k = 0; k < 5; ++k) {
        const Value* v = field[9 + k + (k == 4)];  // model_dir follows conv_n_filters
        if (!v) continue;
        if (v->kind == Value::String) *words[k] = v->s;
        else problems.push_back(std::string(kFields[9 + k + (k == 4)]) + " must be a string, not " + short_repr(*v));
    }
    {
        const Value& v = *field[1];
        bool ok = v.kind == Value::Array;
        for (size_t k = 0; ok && k < v.items.size(); ++k) ok = v.items[k].kind == Value::String;
        if (ok)
            for (const auto& item : v.items) cfg.instruments.push_back(item.s);
        else
            problems.push_back("instruments must be a list of names, not " + short_repr(v));
    }
    std::vector<int64_t> filters(cfg.conv_n_filters.begin(), cfg.conv_n_filters.end());
    if (const Value* v = field[13]) {
        bool ok = v->kind == Value::Array;
        for (size_t k = 0; ok && k < v->items.size(); ++k)
            ok = v->items[k].kind == Value::Number && v->items[k].integer;
        if (ok) {
            filters.clear();
            for (const auto& item : v->items) filters.push_back(item.i);
        } else {
            problems.push_back("conv_n_filters must be a list of integers, not " + short_repr(*v));
        }
    }
    if (!problems.empty()) throw ModelError("config " + cfg.name + ": " + join(problems));

    // stem names (they become file names in fastsep; here they are what fastsep_stem_name returns)
    const auto& names = cfg.instruments;
    if (names.size() < 1 || names.size() > size_t(kMaxStems))
        problems.push_back("a model has 1 to 16 stems, not " + std::to_string(names.size()));
    for (const auto& n : names)
        if (!stem_name_ok(n)) {
            problems.push_back("stem name " + short_repr(Value{Value::String, false, false, 0, 0.0, n, {}, {}}) +
                               " is not allowed: use 1-64 letters, digits, '_', '-' or '.' (not '.' or '..')");
            break;
        }
    {
        std::set<std::string> seen;
        for (const auto& n : names) seen.insert(lower(n));
        if (seen.size() != names.size()) problems.push_back("stem names must be distinct (ignoring case)");
    }

    // bounds
    const int64_t F = ints[0], T = ints[1], N = ints[2], H = ints[3], rate = ints[4], channels = ints[5];
    const bool power_of_two = N >= 128 && N <= 16384 && (N & (N - 1)) == 0;
    if (!power_of_two) {
        problems.push_back("frame_length=" + std::to_string(N) + " must be a power of two from 128 to 16384");
    } else if (!(N / kMaxOverlap <= H && H <= N / 2 && N % H == 0)) {
        problems.push_back("frame_step=" + std::to_string(H) + " must divide frame_length=" + std::to_string(N) +
                           ", from frame_length/16 to frame_length/2");
    } else if (!(64 <= F && F <= N / 2 + 1 && F % 64 == 0)) {
        problems.push_back("F=" + std::to_string(F) + " must be a positive multiple of 64 and at most frame_length/2+1 (" +
                           std::to_string(N / 2 + 1) + ")");
    }
    if (!(64 <= T && T <= kMaxT && T % 64 == 0))
        problems.push_back("T=" + std::to_string(T) + " must be a positive multiple of 64, at most 4096");
    else if (F > 0 && F <= kMaxBinsPerSegment && T * F > kMaxBinsPerSegment)
        problems.push_back("T*F=" + std::to_string(T * F) + " must be at most " + std::to_string(kMaxBinsPerSegment));
    if (!(8000 <= rate && rate <= 192000))
        problems.push_back("sample_rate=" + std::to_string(rate) + " must be from 8000 to 192000 Hz");
    if (channels != 2) problems.push_back("only n_channels = 2 is supported (as in every Spleeter model)");
    if (!(cfg.separation_exponent > 0 && cfg.separation_exponent <= kMaxExponent))
        problems.push_back("separation_exponent=" + std::to_string(cfg.separation_exponent) + " must be in (0, 8]");
    bool filters_ok = filters.size() == 6;
    for (int64_t n : filters) filters_ok = filters_ok && n >= 1 && n <= kMaxFilters;
    if (!filters_ok) problems.push_back("conv_n_filters must be 6 integers from 1 to 4096");

    // words
    if (cfg.mask_extension != "zeros" && cfg.mask_extension != "average")
        problems.push_back("mask_extension '" + cfg.mask_extension.substr(0, 40) + "' must be 'zeros' or 'average'");
    if (cfg.model_type != "unet" && cfg.model_type != "softmax_unet")
        problems.push_back("model_type '" + cfg.model_type.substr(0, 40) + "' must be 'unet' or 'softmax_unet'");
    for (const std::string* a : {&cfg.conv_activation, &cfg.deconv_activation})
        if (*a != "ReLU" && *a != "ELU" && *a != "LeakyReLU")
            problems.push_back("activation '" + a->substr(0, 40) + "' must be ReLU, ELU or LeakyReLU");
    if (code_points(cfg.model_dir) > 4096 || !printable(cfg.model_dir))
        problems.push_back("model_dir must be a printable path");
    if (!problems.empty()) {
        std::string line = "config " + cfg.name + ": " + join(problems);
        for (char& c : line)
            if (static_cast<unsigned char>(c) < 0x20) c = '?';
        throw ModelError(line);
    }

    cfg.F = int(F), cfg.T = int(T), cfg.frame_length = int(N), cfg.frame_step = int(H), cfg.sample_rate = int(rate);
    cfg.n_channels = int(channels);
    cfg.conv_n_filters.assign(filters.begin(), filters.end());
    return cfg;
}

}  // namespace capi
}  // namespace fastsep
