// The gRPC client of the bridge contract. gRPC and protobuf types stay in the .cpp (pimpl), so
// engine modules include only this header.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "avatarbridge/Types.h"

namespace avatarbridge {

/** Receives one call's responses, on the call's reader thread. */
class StreamListener {
 public:
  virtual ~StreamListener() = default;
  virtual void OnHeader(const StreamHeaderInfo& /*header*/) {}
  /** Valid frames of one FrameBatch, in order. */
  virtual void OnFrames(std::vector<Frame>& /*frames*/) {}
  virtual void OnStatus(const StreamStatusInfo& /*status*/) {}
  /** A frame that breaks the header's shape (wrong counts, non-finite values, index gap) was dropped. */
  virtual void OnMalformed(const std::string& /*what*/) {}
  /** Exactly once, last. */
  virtual void OnClosed(const CallStatus& /*status*/) {}
};

struct ClientOptions {
  std::chrono::milliseconds keepalive{10000};   // HTTP/2 pings (the server allows every 10 s)
  int max_receive_message_bytes = 64 * 1024 * 1024;
  /**
   * Transport security (docs/security.md). A CA certificate file (PEM) that signed the server's certificate turns
   * TLS on; empty = plaintext. The server's certificate must name the host of `target`.
   */
  std::string tls_ca_file;
  /** This client's certificate and key (PEM files) for a mutual-TLS server; both or neither, with tls_ca_file. */
  std::string tls_client_cert_file;
  std::string tls_client_key_file;
  /** Bearer token sent as `authorization: Bearer <token>` on every call; empty = none. */
  std::string auth_token;
};

/**
 * Reads the first line of a token file that is neither blank nor a # comment into `token`; false (and `error`
 * naming the file, never the token) if it cannot be read or holds none.
 */
bool ReadTokenFile(const std::string& path, std::string* token, std::string* error);

/** One StreamExpression or AnimateClip call in flight. Destroying it cancels the call and joins. */
class ExpressionStream {
 public:
  ~ExpressionStream();
  ExpressionStream(const ExpressionStream&) = delete;
  ExpressionStream& operator=(const ExpressionStream&) = delete;

  /** Sends audio in the header's encoding (blocks under HTTP/2 flow control). False once the call ended. */
  bool SendAudio(const void* data, size_t bytes);
  /** EndOfAudio + half-close: the server animates what it has, sends the status, ends the call. */
  bool EndAudio();
  /** Ends the call now (the server frees the stream). */
  void Cancel();
  /** Blocks until the call ended; returns how. */
  CallStatus Wait();
  /** Like Wait, with a limit; false if still running. */
  bool WaitFor(std::chrono::milliseconds timeout, CallStatus* status);
  bool Closed() const;

  struct Impl;
  explicit ExpressionStream(std::unique_ptr<Impl> impl);
  /** A call that ends at once with `status` (the client's options could not be used). */
  static std::unique_ptr<ExpressionStream> Failed(std::unique_ptr<Impl> impl, const CallStatus& status);

 private:
  std::unique_ptr<Impl> impl_;
};

/** Receives one Speak call's responses, on the call's reader thread. */
class SpeakListener {
 public:
  virtual ~SpeakListener() = default;
  virtual void OnHeader(const SpeakHeaderInfo& /*header*/) {}
  /** A sentence's audio; play chunks back to back. */
  virtual void OnAudio(const SpeakAudioChunk& /*audio*/) {}
  /**
   * Valid frames of one FrameBatch, in order, time codes on the audio's clock. After a Stop, a batch starts
   * again at k0 = ceil(at_time * fps): its frames ease the face to rest and supersede every frame with index
   * >= k0 received before (drop those, as the audio after at_time).
   */
  virtual void OnFrames(std::vector<Frame>& /*frames*/) {}
  virtual void OnStatus(const SpeakStatusInfo& /*status*/) {}
  virtual void OnMalformed(const std::string& /*what*/) {}
  /** Exactly once, last. */
  virtual void OnClosed(const CallStatus& /*status*/) {}
};

/** One Speak call in flight. Destroying it cancels the call and joins. */
class SpeakCall {
 public:
  ~SpeakCall();
  SpeakCall(const SpeakCall&) = delete;
  SpeakCall& operator=(const SpeakCall&) = delete;

  /**
   * Barge-in: `at_time` = the playback position in seconds on the audio's clock. The server stops
   * synthesising, sends frames that ease the face to rest from ceil(at_time * fps), then a status with
   * stopped = true. Drop audio after at_time. False if the call already ended or Stop was sent.
   */
  bool Stop(double at_time);
  /** Ends the call now (the server frees the stream). */
  void Cancel();
  /** Blocks until the call ended; returns how. */
  CallStatus Wait();
  /** Like Wait, with a limit; false if still running. */
  bool WaitFor(std::chrono::milliseconds timeout, CallStatus* status);
  bool Closed() const;

  struct Impl;
  explicit SpeakCall(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

class BridgeClient {
 public:
  /**
   * `target` is host:port (e.g. "127.0.0.1:50051"); plaintext HTTP/2 unless options.tls_ca_file is set. If a TLS
   * file cannot be read, SetupError() says which and why, and every call ends at once with FailedPrecondition
   * and that message.
   */
  explicit BridgeClient(const std::string& target, ClientOptions options = {});
  ~BridgeClient();
  BridgeClient(const BridgeClient&) = delete;
  BridgeClient& operator=(const BridgeClient&) = delete;

  const std::string& target() const;
  /** Empty, or why the options cannot be used (an unreadable TLS file); calls then fail with this message. */
  const std::string& SetupError() const;

  /** Waits until the channel is connected (or the timeout passes). */
  bool WaitForConnected(std::chrono::milliseconds timeout);

  CallStatus GetCapabilities(CapabilitiesInfo* out, std::chrono::milliseconds timeout);

  /** Opens StreamExpression and sends the header; `listener` must outlive the stream. */
  std::unique_ptr<ExpressionStream> StartStream(const StreamSettings& settings, StreamListener* listener);

  /** AnimateClip: a whole encoded file (wav/flac/ogg/mp3). */
  std::unique_ptr<ExpressionStream> AnimateClip(const std::vector<uint8_t>& audio_file, uint32_t fps,
                                                const std::string& stream_id, StreamListener* listener,
                                                const ExpressionStyle& style = {});

  /** Speak: text -> speech + facial animation on one clock (docs/speak.md); `listener` must outlive the call. */
  std::unique_ptr<SpeakCall> Speak(const SpeakSettings& settings, SpeakListener* listener);
  std::unique_ptr<SpeakCall> Speak(const std::string& text, const std::string& voice, const std::string& language,
                                   uint32_t fps, const ExpressionStyle& style, SpeakListener* listener);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace avatarbridge
