// Compile-check stand-ins (tests/test_unity_core.py): the members of UnityEngine, UnityEditor, Grpc.Core,
// Grpc.Net.Client, YetAnotherHttpHandler, Google.Protobuf, glTFast and the protoc-generated AvatarBridge.V1
// contract that unity_plugin/ uses, with the real signatures and no behaviour. They let mcs type-check the
// Unity-only sources assembly by assembly along the asmdef graph; they prove nothing about runtime behaviour
// and do not replace compiling in Unity. Add a member here when the package starts using a new API.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace UnityEngine
{
    public class Object { public string name { get; set; } public static void Destroy(Object o) {} public static implicit operator bool(Object o) { return o != null; } }
    public class Component : Object { public Transform transform { get { return null; } } public GameObject gameObject { get { return null; } } public T GetComponent<T>() { return default(T); } public T GetComponentInChildren<T>() { return default(T); } public T[] GetComponentsInChildren<T>(bool inactive) { return null; } }
    public class Behaviour : Component { public bool enabled { get; set; } public bool isActiveAndEnabled { get { return true; } } }
    public class MonoBehaviour : Behaviour { }
    public class ScriptableObject : Object { public static T CreateInstance<T>() where T : ScriptableObject { return null; } }
    public class GameObject : Object { public GameObject(string n) {} public Transform transform { get { return null; } } public T AddComponent<T>() where T : Component { return null; } public void SetActive(bool a) {} public T GetComponentInChildren<T>() { return default(T); } }
    public class Transform : Component, IEnumerable { public Quaternion localRotation, rotation; public Vector3 localPosition; public Vector3 forward { get { return default(Vector3); } } public int childCount { get { return 0; } } public Transform GetChild(int i) { return null; } public void SetParent(Transform p, bool w) {} public Transform Find(string n) { return null; } public IEnumerator GetEnumerator() { return null; } }
    public class Mesh : Object { public int blendShapeCount { get { return 0; } } public string GetBlendShapeName(int i) { return ""; } public Vector3[] vertices { get; set; } public int[] triangles { get; set; } public void AddBlendShapeFrame(string n, float w, Vector3[] d, Vector3[] nn, Vector3[] t) {} }
    public class Renderer : Component { }
    public class SkinnedMeshRenderer : Renderer { public Mesh sharedMesh { get; set; } public void SetBlendShapeWeight(int i, float v) {} public float GetBlendShapeWeight(int i) { return 0; } }
    public class RuntimeAnimatorController : Object { }
    public enum HumanBodyBones { Head, Neck, LeftEye, RightEye }
    public class Animator : Behaviour { public bool isHuman { get { return false; } } public RuntimeAnimatorController runtimeAnimatorController { get; set; } public Transform GetBoneTransform(HumanBodyBones b) { return null; } }
    public struct Vector3 { public float x, y, z; public Vector3(float x, float y, float z) { this.x = x; this.y = y; this.z = z; } public static Vector3 zero, right, up, forward; public static Vector3 operator *(Vector3 a, float b) { return a; } public static float Angle(Vector3 a, Vector3 b) { return 0; } }
    public struct Quaternion { public float x, y, z, w; public Quaternion(float x, float y, float z, float w) { this.x = x; this.y = y; this.z = z; this.w = w; } public static Quaternion Inverse(Quaternion q) { return q; } public static Quaternion operator *(Quaternion a, Quaternion b) { return a; } public static Vector3 operator *(Quaternion a, Vector3 b) { return b; } public static Quaternion Euler(float x, float y, float z) { return default(Quaternion); } }
    public static class Mathf { public const float Deg2Rad = 0.01745f; public static float Clamp01(float v) { return v; } public static float Clamp(float v, float a, float b) { return v; } public static float Max(float a, float b) { return a; } }
    public static class Debug { public static void Log(object m, Object c = null) {} public static void LogWarning(object m, Object c = null) {} public static void LogError(object m, Object c = null) {} }
    public enum AudioClipLoadType { DecompressOnLoad, CompressedInMemory, Streaming }
    public enum AudioDataLoadState { Unloaded, Loading, Loaded, Failed }
    public class AudioClip : Object { public AudioClipLoadType loadType { get { return 0; } } public AudioDataLoadState loadState { get { return 0; } } public bool LoadAudioData() { return true; } public int channels { get { return 1; } } public int frequency { get { return 1; } } public int samples { get { return 1; } } public bool GetData(float[] d, int o) { return true; } }
    public class AudioSource : Behaviour { public AudioClip clip { get; set; } public void PlayScheduled(double t) {} public void Stop() {} }
    public static class AudioSettings { public static double dspTime { get { return 0; } } }
    public static class Microphone { public static string[] devices { get { return null; } } public static AudioClip Start(string d, bool loop, int len, int rate) { return null; } public static void End(string d) {} public static int GetPosition(string d) { return 0; } }
    public static class Time { public static float deltaTime { get { return 0; } } public static double unscaledTimeAsDouble { get { return 0; } } public static float realtimeSinceStartup { get { return 0; } } }
    public static class Application { public static bool isPlaying { get { return true; } } }
    public class PropertyAttribute : Attribute { }
    public sealed class SerializeField : Attribute { }
    public sealed class TooltipAttribute : PropertyAttribute { public TooltipAttribute(string t) {} }
    public sealed class RangeAttribute : PropertyAttribute { public RangeAttribute(float a, float b) {} }
    public sealed class MinAttribute : PropertyAttribute { public MinAttribute(float a) {} }
    public sealed class DisallowMultipleComponent : Attribute { }
    public sealed class DefaultExecutionOrder : Attribute { public DefaultExecutionOrder(int o) {} }
    public sealed class AddComponentMenu : Attribute { public AddComponentMenu(string m) {} }
    public sealed class RequireComponent : Attribute { public RequireComponent(Type t) {} }
    public sealed class CreateAssetMenuAttribute : Attribute { public string fileName, menuName; public int order; }
    public static class GUILayout { public static bool Button(string t) { return false; } }
}
namespace UnityEngine.TestTools { public sealed class UnityTestAttribute : Attribute { } }
namespace UnityEditor
{
    public sealed class InitializeOnLoadAttribute : Attribute { }
    public enum PlayModeStateChange { EnteredEditMode, ExitingEditMode, EnteredPlayMode, ExitingPlayMode }
    public static class EditorApplication { public static event Action<PlayModeStateChange> playModeStateChanged; static void F() { playModeStateChanged(0); } }
    public static class AssemblyReloadEvents { public delegate void AssemblyReloadCallback(); public static event AssemblyReloadCallback beforeAssemblyReload; static void F() { beforeAssemblyReload(); } }
    public sealed class CustomEditor : Attribute { public CustomEditor(Type t) {} }
    public class Editor : UnityEngine.ScriptableObject { public UnityEngine.Object target; public virtual void OnInspectorGUI() {} public bool DrawDefaultInspector() { return true; } public void Repaint() {} }
    public enum MessageType { None, Info, Warning, Error }
    public static class EditorStyles { public static object boldLabel; }
    public static class EditorGUILayout
    {
        public static void Space() {} public static void LabelField(string a, object style) {} public static void LabelField(string a, string b) {}
        public static void HelpBox(string m, MessageType t) {}
        public static UnityEngine.Object ObjectField(string l, UnityEngine.Object o, Type t, bool s) { return o; }
        public sealed class HorizontalScope : IDisposable { public void Dispose() {} }
    }
    public static class EditorGUI { public sealed class DisabledScope : IDisposable { public DisabledScope(bool d) {} public void Dispose() {} } }
}
namespace Google.Protobuf
{
    public sealed class ByteString { public static ByteString CopyFrom(byte[] b) { return null; } }
    namespace Collections { public sealed class RepeatedField<T> : List<T> { } }
}
namespace Grpc.Core
{
    public enum StatusCode { OK, Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists, PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange, Unimplemented, Internal, Unavailable, DataLoss, Unauthenticated }
    public struct Status { public string Detail { get { return ""; } } public StatusCode StatusCode { get { return 0; } } }
    public class RpcException : Exception { public Status Status { get { return default(Status); } } public StatusCode StatusCode { get { return 0; } } }
    public interface IAsyncStreamReader<T> { T Current { get; } Task<bool> MoveNext(CancellationToken ct); }
    public interface IAsyncStreamWriter<T> { Task WriteAsync(T m); }
    public interface IClientStreamWriter<T> : IAsyncStreamWriter<T> { Task CompleteAsync(); }
    public sealed class AsyncDuplexStreamingCall<TReq, TResp> : IDisposable { public IClientStreamWriter<TReq> RequestStream { get { return null; } } public IAsyncStreamReader<TResp> ResponseStream { get { return null; } } public void Dispose() {} }
    public sealed class AsyncUnaryCall<T> { public System.Runtime.CompilerServices.TaskAwaiter<T> GetAwaiter() { return default(System.Runtime.CompilerServices.TaskAwaiter<T>); } }
    public abstract class CallInvoker { }
    public class ChannelBase { }
}
namespace Grpc.Net.Client
{
    public sealed class GrpcChannelOptions { public System.Net.Http.HttpMessageHandler HttpHandler { get; set; } public bool DisposeHttpClient { get; set; } public int? MaxReceiveMessageSize { get; set; } }
    public sealed class GrpcChannel : Grpc.Core.ChannelBase, IDisposable { public static GrpcChannel ForAddress(string a, GrpcChannelOptions o) { return null; } public Task ShutdownAsync() { return null; } public void Dispose() {} }
}
namespace Cysharp.Net.Http { public sealed class YetAnotherHttpHandler : System.Net.Http.HttpMessageHandler { public bool Http2Only { get; set; } public string RootCertificates { get; set; } public string ClientAuthCertificates { get; set; } public string ClientAuthKey { get; set; } protected internal override Task<System.Net.Http.HttpResponseMessage> SendAsync(System.Net.Http.HttpRequestMessage r, CancellationToken c) { return null; } } }
namespace GLTFast
{
    public class GltfImport { public Task<bool> Load(string uri) { return null; } public Task<bool> InstantiateMainSceneAsync(UnityEngine.Transform parent) { return null; } }
}
namespace AvatarBridge.V1
{
    using Google.Protobuf;
    using Google.Protobuf.Collections;
    using Grpc.Core;
    public static class ContractStamp { public const string ProtoSha256 = "0123456789abcdef"; }
    public enum AudioEncoding { Unspecified, Pcm16, Float32 }
    public enum Emotion { Neutral, Happy, Sad, Angry, Surprised }
    public sealed class GetCapabilitiesRequest { }
    public sealed class Limits { public uint MinSampleRate, MaxSampleRate; }
    public sealed class Capabilities { public string ServerVersion, ApiVersion; public Limits Limits; public RepeatedField<uint> SupportedFps = new RepeatedField<uint>(); }
    public sealed class ExpressionStyle { public Emotion Emotion; public float EmotionStrength, Intensity, HeadMotion; public ulong Seed; }
    public sealed class StreamHeader { public AudioEncoding Encoding; public uint SampleRate, Channels, Fps; public string StreamId, Engine; public ExpressionStyle Style; }
    public sealed class AudioChunk { public ByteString Data; }
    public sealed class EndOfAudio { }
    public sealed class ExpressionRequest { public StreamHeader Header; public AudioChunk Audio; public EndOfAudio End; }
    public sealed class ExpressionHeader { public string StreamId, Engine, ApiVersion; public RepeatedField<string> BlendshapeNames, BoneNames; public uint Fps, SampleRate; public float LookaheadMs; }
    public sealed class Vector3 { public float X, Y, Z; }
    public sealed class Frame { public ulong Index, SampleIndex; public double Time; public RepeatedField<float> Weights, Rotations; public Vector3 HeadTranslation; public float Confidence; }
    public sealed class FrameBatch { public RepeatedField<Frame> Frames; }
    public sealed class StreamStatus { public ulong FramesSent; public double AudioSeconds; public RepeatedField<string> Warnings; public string Engine; }
    public sealed class ExpressionResponse { public enum MsgOneofCase { None, Header, Frames, Status } public MsgOneofCase MsgCase; public ExpressionHeader Header; public FrameBatch Frames; public StreamStatus Status; }
    public static class AvatarBridge
    {
        public class AvatarBridgeClient
        {
            public AvatarBridgeClient(ChannelBase c) {}
            public AsyncUnaryCall<Capabilities> GetCapabilitiesAsync(GetCapabilitiesRequest r, Metadata headers = null, DateTime? deadline = null, CancellationToken cancellationToken = default(CancellationToken)) { return null; }
            public AsyncDuplexStreamingCall<ExpressionRequest, ExpressionResponse> StreamExpression(Metadata headers = null, DateTime? deadline = null, CancellationToken cancellationToken = default(CancellationToken)) { return null; }
        }
    }
    public sealed class Metadata { }
}
namespace System.Net.Http
{
    public class HttpRequestMessage { public Headers.HttpRequestHeaders Headers { get { return null; } } } public class HttpResponseMessage { }
    public abstract class HttpMessageHandler : IDisposable { protected internal abstract System.Threading.Tasks.Task<HttpResponseMessage> SendAsync(HttpRequestMessage r, System.Threading.CancellationToken c); public void Dispose() {} }
    public abstract class DelegatingHandler : HttpMessageHandler { protected DelegatingHandler(HttpMessageHandler inner) {} protected internal override System.Threading.Tasks.Task<HttpResponseMessage> SendAsync(HttpRequestMessage r, System.Threading.CancellationToken c) { return null; } }
    namespace Headers { public sealed class HttpRequestHeaders { public bool Remove(string name) { return true; } public bool TryAddWithoutValidation(string name, string value) { return true; } } }
}
