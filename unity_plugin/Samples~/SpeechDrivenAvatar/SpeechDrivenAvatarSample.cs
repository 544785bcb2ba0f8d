using System.Threading.Tasks;
using AvatarBridge.Device;
using AvatarBridge.Face;
using UnityEngine;

namespace AvatarBridge.Samples
{
    /// <summary>
    /// Loads a glTF avatar at runtime with glTFast (Ready Player Me or VRoid .glb), puts a Face Actor and a
    /// Bridge Client Device on it, and animates it from a speech clip played through this object's AudioSource.
    /// </summary>
    [RequireComponent(typeof(AudioSource))]
    public sealed class SpeechDrivenAvatarSample : MonoBehaviour
    {
        [Tooltip("Path or URL of a .glb avatar with ARKit morph targets (e.g. a Ready Player Me avatar with ?morphTargets=ARKit).")]
        [SerializeField] string avatarUri = "";
        [Tooltip("ReadyPlayerMe or VRoid mapper from this sample, or your own.")]
        [SerializeField] FaceMapper mapper;
        [Tooltip("Speech to animate (Load Type: Decompress On Load). The repository's examples/hello.wav works.")]
        [SerializeField] AudioClip speech;
        [SerializeField] string serverAddress = "http://127.0.0.1:50051";
        [SerializeField, Range(0f, 500f)] float jitterBudgetMs = 60f;

        async void Start()
        {
            if (string.IsNullOrEmpty(avatarUri) || mapper == null || speech == null)
            {
                Debug.LogError("[Avatar Bridge sample] set Avatar Uri, Mapper and Speech on " + name, this);
                return;
            }
            var avatar = new GameObject("Avatar");
            avatar.transform.SetParent(transform, false);
            if (!await LoadGltf(avatarUri, avatar.transform)) return;

            var actor = avatar.AddComponent<FaceActor>();
            actor.Mapper = mapper;
            var device = gameObject.AddComponent<BridgeClientDevice>();
            device.ServerAddress = serverAddress;
            device.Actor = actor;
            device.JitterBudgetMs = jitterBudgetMs;
            device.AudioSource = GetComponent<AudioSource>();
            device.Play(speech);
        }

        static async Task<bool> LoadGltf(string uri, Transform parent)
        {
            var gltf = new GLTFast.GltfImport();
            if (!await gltf.Load(uri))
            {
                Debug.LogError("[Avatar Bridge sample] glTFast could not load " + uri);
                return false;
            }
            return await gltf.InstantiateMainSceneAsync(parent);
        }
    }
}
