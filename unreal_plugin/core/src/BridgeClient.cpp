#include "avatarbridge/BridgeClient.h"

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "ProtoConvert.h"
#include "avatarbridge/v1/bridge.grpc.pb.h"

namespace avatarbridge {

const char* StatusCodeName(StatusCode code) {
  static const char* names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
                                "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i <= 16 ? names[i] : "UNKNOWN";
}

std::string CallStatus::ToString() const {
  return message.empty() ? StatusCodeName(code) : std::string(StatusCodeName(code)) + ": " + message;
}

namespace {
CallStatus FromGrpc(const grpc::Status& s) {
  return CallStatus{static_cast<StatusCode>(s.error_code()), s.error_message()};
}

// How a call ends, shared by every streaming call: its reader thread closes it once; any thread may wait.
class CallEnd {
 public:
  void Close(const CallStatus& cs) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
      status_ = cs;
    }
    cv_.notify_all();
  }
  // Cancels the call unless it has ended (a destroyed handle must not leave its reader thread blocked).
  void CancelIfOpen(grpc::ClientContext& ctx) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!closed_) ctx.TryCancel();
  }
  CallStatus Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return closed_; });
    return status_;
  }
  bool WaitFor(std::chrono::milliseconds timeout, CallStatus* status) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return closed_; })) return false;
    if (status) *status = status_;
    return true;
  }
  bool Closed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return closed_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
  CallStatus status_;
};
}  // namespace

// --------------------------------------------------------------------------------------------
struct ExpressionStream::Impl {
  std::shared_ptr<grpc::Channel> channel;
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ExpressionRequest, v1::ExpressionResponse>> bidi;
  std::unique_ptr<grpc::ClientReader<v1::ExpressionResponse>> reader;
  StreamListener* listener = nullptr;
  std::thread thread;

  std::mutex write_mu;
  bool writes_done = false;

  CallEnd end;

  ~Impl() {
    end.CancelIfOpen(ctx);
    if (thread.joinable()) thread.join();
  }

  bool Read(v1::ExpressionResponse* r) { return bidi ? bidi->Read(r) : reader->Read(r); }

  void ReadLoop() {
    v1::ExpressionResponse r;
    StreamHeaderInfo header;
    bool have_header = false;
    uint64_t next_index = 0;
    std::vector<Frame> frames;
    std::string why;
    while (Read(&r)) {
      switch (r.msg_case()) {
        case v1::ExpressionResponse::kHeader:
          header = FromProto(r.header());
          have_header = true;
          listener->OnHeader(header);
          break;
        case v1::ExpressionResponse::kFrames: {
          frames.clear();
          for (const auto& f : r.frames().frames()) {
            Frame out;
            if (!have_header) {
              listener->OnMalformed("frames arrived before the stream header");
              continue;
            }
            if (ConvertFrame(f, header, next_index, &out, &why)) {
              frames.push_back(std::move(out));
            } else {
              listener->OnMalformed(why);
            }
            next_index = f.index() + 1;  // resynchronise on whatever the server numbers next
          }
          if (!frames.empty()) listener->OnFrames(frames);
          break;
        }
        case v1::ExpressionResponse::kStatus:
          listener->OnStatus(FromProto(r.status()));
          break;
        default:
          listener->OnMalformed("an empty ExpressionResponse");
      }
    }
    const grpc::Status s = bidi ? bidi->Finish() : reader->Finish();
    const CallStatus cs = FromGrpc(s);
    listener->OnClosed(cs);
    end.Close(cs);
  }
};

ExpressionStream::ExpressionStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

std::unique_ptr<ExpressionStream> ExpressionStream::Failed(std::unique_ptr<Impl> impl, const CallStatus& status) {
  Impl* raw = impl.get();  // ends at once, on the call's own thread like any other ending
  impl->thread = std::thread([raw, status] {
    raw->listener->OnClosed(status);
    raw->end.Close(status);
  });
  return std::unique_ptr<ExpressionStream>(new ExpressionStream(std::move(impl)));
}
ExpressionStream::~ExpressionStream() = default;

bool ExpressionStream::SendAudio(const void* data, size_t bytes) {
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  if (impl_->writes_done || !impl_->bidi || Closed()) return false;
  v1::ExpressionRequest req;
  req.mutable_audio()->set_data(data, bytes);
  return impl_->bidi->Write(req);
}

bool ExpressionStream::EndAudio() {
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  if (impl_->writes_done || !impl_->bidi) return false;
  impl_->writes_done = true;
  v1::ExpressionRequest req;
  req.mutable_end();
  const bool ok = impl_->bidi->Write(req);
  return impl_->bidi->WritesDone() && ok;
}

void ExpressionStream::Cancel() { impl_->ctx.TryCancel(); }

CallStatus ExpressionStream::Wait() { return impl_->end.Wait(); }

bool ExpressionStream::WaitFor(std::chrono::milliseconds timeout, CallStatus* status) {
  return impl_->end.WaitFor(timeout, status);
}

bool ExpressionStream::Closed() const { return impl_->end.Closed(); }

// --------------------------------------------------------------------------------------------
struct SpeakCall::Impl {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<v1::SpeakRequest, v1::SpeakResponse>> bidi;
  SpeakListener* listener = nullptr;
  std::thread thread;

  std::mutex write_mu;
  bool stop_sent = false;
  bool writes_done = false;

  CallEnd end;

  ~Impl() {
    end.CancelIfOpen(ctx);
    if (thread.joinable()) thread.join();
  }

  void ReadLoop() {
    v1::SpeakResponse r;
    StreamHeaderInfo header;
    bool have_header = false;
    uint64_t next_index = 0;
    std::vector<Frame> frames;
    std::string why;
    while (bidi->Read(&r)) {
      switch (r.msg_case()) {
        case v1::SpeakResponse::kHeader: {
          SpeakHeaderInfo h;
          h.stream_id = r.header().stream_id();
          h.voice = r.header().voice();
          h.language = r.header().language();
          h.tts_engine = r.header().tts_engine();
          h.sample_rate = r.header().sample_rate();
          h.expression = FromProto(r.header().expression());
          if (!h.expression.sample_rate) h.expression.sample_rate = h.sample_rate;
          header = h.expression;
          have_header = true;
          listener->OnHeader(h);
          break;
        }
        case v1::SpeakResponse::kAudio: {
          SpeakAudioChunk a;
          a.sample_index = r.audio().sample_index();
          a.time = r.audio().time();
          const std::string& pcm = r.audio().pcm16();
          a.samples.resize(pcm.size() / 2);
          for (size_t i = 0; i < a.samples.size(); ++i) {  // little-endian on the wire, whatever the host
            const auto lo = static_cast<uint8_t>(pcm[2 * i]), hi = static_cast<uint8_t>(pcm[2 * i + 1]);
            a.samples[i] = static_cast<int16_t>(static_cast<uint16_t>(lo | (hi << 8)));
          }
          if (pcm.size() % 2) listener->OnMalformed("a SpeakAudio chunk with an odd number of bytes");
          listener->OnAudio(a);
          break;
        }
        case v1::SpeakResponse::kFrames: {
          frames.clear();
          bool stopping;
          {
            std::lock_guard<std::mutex> lock(write_mu);
            stopping = stop_sent;
          }
          for (const auto& f : r.frames().frames()) {
            Frame out;
            if (!have_header) {
              listener->OnMalformed("frames arrived before the speak header");
              continue;
            }
            // After a Stop the eased frames restart at k0 <= the next index: they replace what came before.
            const uint64_t expected = stopping && f.index() < next_index ? f.index() : next_index;
            if (ConvertFrame(f, header, expected, &out, &why)) {
              frames.push_back(std::move(out));
            } else {
              listener->OnMalformed(why);
            }
            next_index = f.index() + 1;
          }
          if (!frames.empty()) listener->OnFrames(frames);
          break;
        }
        case v1::SpeakResponse::kStatus: {
          SpeakStatusInfo st;
          st.frames_sent = r.status().frames_sent();
          st.audio_seconds = r.status().audio_seconds();
          st.warnings.assign(r.status().warnings().begin(), r.status().warnings().end());
          st.sentences = r.status().sentences();
          st.synthesis_seconds = r.status().synthesis_seconds();
          st.stopped = r.status().stopped();
          listener->OnStatus(st);
          break;
        }
        default:
          listener->OnMalformed("an empty SpeakResponse");
      }
    }
    const CallStatus cs = FromGrpc(bidi->Finish());
    listener->OnClosed(cs);
    end.Close(cs);
  }
};

SpeakCall::SpeakCall(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SpeakCall::~SpeakCall() = default;

bool SpeakCall::Stop(double at_time) {
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  if (impl_->stop_sent || impl_->writes_done || !impl_->bidi || Closed()) return false;
  impl_->stop_sent = true;
  v1::SpeakRequest req;
  req.mutable_stop()->set_at_time(at_time < 0 ? 0.0 : at_time);
  const bool ok = impl_->bidi->Write(req);
  impl_->writes_done = true;  // nothing else to say: half-close
  return impl_->bidi->WritesDone() && ok;
}

void SpeakCall::Cancel() { impl_->ctx.TryCancel(); }

CallStatus SpeakCall::Wait() { return impl_->end.Wait(); }

bool SpeakCall::WaitFor(std::chrono::milliseconds timeout, CallStatus* status) {
  return impl_->end.WaitFor(timeout, status);
}

bool SpeakCall::Closed() const { return impl_->end.Closed(); }

// --------------------------------------------------------------------------------------------
namespace {
bool ReadWholeFile(const std::string& path, const char* what, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::string("cannot read ") + what + " " + path + " (missing or not readable)";
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

// Reads the TLS files of `o` into SSL options; an error names the option and the file.
bool SslOptions(const ClientOptions& o, grpc::SslCredentialsOptions* ssl, std::string* error) {
  if (o.tls_client_cert_file.empty() != o.tls_client_key_file.empty()) {
    *error = "tls_client_cert_file and tls_client_key_file go together (mutual TLS)";
    return false;
  }
  if (!ReadWholeFile(o.tls_ca_file, "tls_ca_file", &ssl->pem_root_certs, error)) return false;
  if (ssl->pem_root_certs.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    *error = "tls_ca_file " + o.tls_ca_file + " holds no PEM certificate (the CA that signed the server's)";
    return false;
  }
  if (!o.tls_client_cert_file.empty() &&
      (!ReadWholeFile(o.tls_client_cert_file, "tls_client_cert_file", &ssl->pem_cert_chain, error) ||
       !ReadWholeFile(o.tls_client_key_file, "tls_client_key_file", &ssl->pem_private_key, error)))
    return false;
  return true;
}
}  // namespace

bool ReadTokenFile(const std::string& path, std::string* token, std::string* error) {
  std::string text;
  if (!ReadWholeFile(path, "token file", &text, error)) return false;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t a = line.find_first_not_of(" \t\r");
    if (a == std::string::npos || line[a] == '#') continue;
    const size_t b = line.find_last_not_of(" \t\r");
    *token = line.substr(a, b - a + 1);
    return true;
  }
  *error = "token file " + path + " holds no token (one line with the token)";
  return false;
}

struct BridgeClient::Impl {
  std::string target;
  std::string auth_token;
  std::string setup_error;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::AvatarBridge::Stub> stub;

  // Every call carries the bearer token (if any) in its metadata.
  void Prepare(grpc::ClientContext& ctx) const {
    if (!auth_token.empty()) ctx.AddMetadata("authorization", "Bearer " + auth_token);
  }
  CallStatus SetupFailure() const { return CallStatus{StatusCode::FailedPrecondition, setup_error}; }
};

BridgeClient::BridgeClient(const std::string& target, ClientOptions options) : impl_(new Impl) {
  impl_->target = target;
  impl_->auth_token = options.auth_token;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(options.keepalive.count()));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  // Our sessions back off themselves; keep the channel's own reconnect delay short.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!options.tls_ca_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    if (SslOptions(options, &ssl, &impl_->setup_error)) creds = grpc::SslCredentials(ssl);
  } else if (!options.tls_client_cert_file.empty() || !options.tls_client_key_file.empty()) {
    impl_->setup_error = "tls_client_cert_file needs tls_ca_file too: mutual TLS is TLS plus a client certificate";
  }
  impl_->channel = grpc::CreateCustomChannel(target, creds, args);
  impl_->stub = v1::AvatarBridge::NewStub(impl_->channel);
}

BridgeClient::~BridgeClient() = default;

const std::string& BridgeClient::target() const { return impl_->target; }

const std::string& BridgeClient::SetupError() const { return impl_->setup_error; }

bool BridgeClient::WaitForConnected(std::chrono::milliseconds timeout) {
  if (!impl_->setup_error.empty()) return false;
  return impl_->channel->WaitForConnected(std::chrono::system_clock::now() + timeout);
}

CallStatus BridgeClient::GetCapabilities(CapabilitiesInfo* out, std::chrono::milliseconds timeout) {
  if (!impl_->setup_error.empty()) return impl_->SetupFailure();
  grpc::ClientContext ctx;
  impl_->Prepare(ctx);
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  ctx.set_wait_for_ready(true);
  v1::Capabilities caps;
  const grpc::Status s = impl_->stub->GetCapabilities(&ctx, v1::GetCapabilitiesRequest(), &caps);
  if (!s.ok()) return FromGrpc(s);
  out->server_version = caps.server_version();
  out->api_version = caps.api_version();
  out->blendshape_names.assign(caps.blendshape_names().begin(), caps.blendshape_names().end());
  out->bone_names.assign(caps.bone_names().begin(), caps.bone_names().end());
  out->supported_fps.assign(caps.supported_fps().begin(), caps.supported_fps().end());
  out->max_audio_seconds = caps.limits().max_audio_seconds();
  for (const auto& e : caps.engines()) {
    // The default audio -> expression engine; capture and video engines are defaults of their own kinds.
    if (e.is_default() && e.kind() == "expression") {
      out->default_engine = e.name();
      out->default_lookahead_ms = e.lookahead_ms();
    }
  }
  return CallStatus{};
}

std::unique_ptr<ExpressionStream> BridgeClient::StartStream(const StreamSettings& settings, StreamListener* listener) {
  auto impl = std::make_unique<ExpressionStream::Impl>();
  impl->channel = impl_->channel;
  impl->listener = listener;
  if (!impl_->setup_error.empty()) return ExpressionStream::Failed(std::move(impl), impl_->SetupFailure());
  impl_->Prepare(impl->ctx);
  impl->bidi = impl_->stub->StreamExpression(&impl->ctx);
  v1::ExpressionRequest header;
  ToProto(settings, header.mutable_header());
  impl->bidi->Write(header);  // a failure shows up as the call's status
  ExpressionStream::Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->ReadLoop(); });
  return std::unique_ptr<ExpressionStream>(new ExpressionStream(std::move(impl)));
}

std::unique_ptr<ExpressionStream> BridgeClient::AnimateClip(const std::vector<uint8_t>& audio_file, uint32_t fps,
                                                            const std::string& stream_id, StreamListener* listener,
                                                            const ExpressionStyle& style) {
  auto impl = std::make_unique<ExpressionStream::Impl>();
  impl->channel = impl_->channel;
  impl->listener = listener;
  v1::AnimateClipRequest req;
  req.set_audio_file(audio_file.data(), audio_file.size());
  req.set_fps(fps);
  req.set_stream_id(stream_id);
  ToProto(style, req.mutable_style());
  if (!impl_->setup_error.empty()) return ExpressionStream::Failed(std::move(impl), impl_->SetupFailure());
  impl_->Prepare(impl->ctx);
  impl->reader = impl_->stub->AnimateClip(&impl->ctx, req);
  ExpressionStream::Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->ReadLoop(); });
  return std::unique_ptr<ExpressionStream>(new ExpressionStream(std::move(impl)));
}

std::unique_ptr<SpeakCall> BridgeClient::Speak(const SpeakSettings& settings, SpeakListener* listener) {
  auto impl = std::make_unique<SpeakCall::Impl>();
  impl->listener = listener;
  if (!impl_->setup_error.empty()) {  // ends at once, on the call's own thread like any other ending
    const CallStatus failed = impl_->SetupFailure();
    SpeakCall::Impl* raw = impl.get();
    impl->thread = std::thread([raw, failed] {
      raw->listener->OnClosed(failed);
      raw->end.Close(failed);
    });
    return std::unique_ptr<SpeakCall>(new SpeakCall(std::move(impl)));
  }
  impl_->Prepare(impl->ctx);
  impl->bidi = impl_->stub->Speak(&impl->ctx);
  v1::SpeakRequest req;
  v1::SpeakStart* start = req.mutable_start();
  start->set_text(settings.text);
  start->set_voice(settings.voice);
  start->set_language(settings.language);
  start->set_speaking_rate(settings.speaking_rate);
  start->set_fps(settings.fps);
  start->set_stream_id(settings.stream_id);
  ToProto(settings.style, start->mutable_style());
  // The call stays open for writing so that a Stop can follow; Stop (or the end of the call) half-closes.
  impl->bidi->Write(req);  // a failure shows up as the call's status
  SpeakCall::Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->ReadLoop(); });
  return std::unique_ptr<SpeakCall>(new SpeakCall(std::move(impl)));
}

std::unique_ptr<SpeakCall> BridgeClient::Speak(const std::string& text, const std::string& voice,
                                               const std::string& language, uint32_t fps,
                                               const ExpressionStyle& style, SpeakListener* listener) {
  SpeakSettings s;
  s.text = text;
  s.voice = voice;
  s.language = language;
  s.fps = fps;
  s.style = style;
  return Speak(s, listener);
}

}  // namespace avatarbridge
