using UnityEngine;

namespace AvatarBridge.Device
{
    /// <summary>
    /// A microphone as its own component: opens a Unity Microphone into a looping clip and hands out the samples
    /// captured since the last read. The <see cref="BridgeClientDevice"/> streams it when its Input is Microphone
    /// (it adds one to its GameObject when none is assigned); any other script can read it the same way.
    /// </summary>
    [DisallowMultipleComponent]
    [AddComponentMenu("Avatar Bridge/Microphone Input")]
    public sealed class MicrophoneInput : MonoBehaviour
    {
        [Tooltip("Microphone device name; empty = the default microphone.")]
        [SerializeField] string deviceName = "";
        [Tooltip("Capture rate in Hz; the server takes 8000..48000 (16000 is what the engines use).")]
        [SerializeField] int sampleRate = 16000;

        string micName;
        AudioClip micClip;
        int readPos;
        float[] scratch = new float[0];

        /// <summary>Device name; empty = the default microphone. Takes effect at the next <see cref="Begin"/>.</summary>
        public string DeviceName { get { return deviceName; } set { deviceName = value ?? ""; } }

        /// <summary>Capture rate in Hz. Takes effect at the next <see cref="Begin"/>.</summary>
        public int SampleRate { get { return sampleRate; } set { sampleRate = value; } }

        /// <summary>Whether capture is running.</summary>
        public bool IsCapturing { get { return micClip != null; } }

        /// <summary>Interleaved channels of the samples <see cref="Read"/> returns.</summary>
        public int Channels { get { return micClip != null ? micClip.channels : 1; } }

        /// <summary>Starts capture (restarts it if it was running). Returns null, or why it could not start.</summary>
        public string Begin()
        {
            End();
            string[] devices = Microphone.devices;
            if (devices == null || devices.Length == 0) return "no microphone found";
            micName = string.IsNullOrEmpty(deviceName) ? null : deviceName;
            micClip = Microphone.Start(micName, true, 2, sampleRate);
            if (micClip == null) return "microphone '" + (micName ?? "default") + "' did not start";
            readPos = 0;
            return null;
        }

        /// <summary>
        /// The samples captured since the last call, interleaved (<see cref="Channels"/> per frame), in a buffer
        /// reused between calls. Returns the number of frames: 0 when nothing new arrived or capture is off.
        /// </summary>
        public int Read(out float[] samples)
        {
            samples = scratch;
            if (micClip == null) return 0;
            int pos = Microphone.GetPosition(micName);
            if (pos < 0 || pos == readPos) return 0;
            int total = micClip.samples;
            int count = pos > readPos ? pos - readPos : total - readPos + pos;
            if (scratch.Length != count * micClip.channels) scratch = new float[count * micClip.channels];
            micClip.GetData(scratch, readPos);  // wraps around the looping buffer
            readPos = pos;
            samples = scratch;
            return count;
        }

        /// <summary>Stops capture.</summary>
        public void End()
        {
            if (micClip == null) return;
            Microphone.End(micName);
            micClip = null;
        }

        void OnDisable() { End(); }
    }
}
