using AvatarBridge.Device;
using UnityEditor;
using UnityEngine;

namespace AvatarBridge.Editor
{
    /// <summary>The device inspector: settings, then live status, stream header and jitter-buffer counters.</summary>
    [CustomEditor(typeof(BridgeClientDevice))]
    sealed class BridgeClientDeviceEditor : UnityEditor.Editor
    {
        public override void OnInspectorGUI()
        {
            DrawDefaultInspector();
            var device = (BridgeClientDevice)target;
            EditorGUILayout.Space();
            EditorGUILayout.LabelField("Status", EditorStyles.boldLabel);
            if (!Application.isPlaying)
            {
                EditorGUILayout.HelpBox("Enter play mode to stream.", MessageType.None);
                return;
            }
            MessageType kind = device.Status == BridgeStatus.Failed ? MessageType.Error
                             : device.Status == BridgeStatus.Retrying ? MessageType.Warning : MessageType.Info;
            EditorGUILayout.HelpBox(device.Status + (string.IsNullOrEmpty(device.StatusMessage) ? "" : ": " + device.StatusMessage), kind);
            var s = device.Stream;
            if (s != null)
            {
                EditorGUILayout.LabelField("Engine", s.Engine);
                EditorGUILayout.LabelField("Look-ahead", s.LookaheadMs.ToString("F0") + " ms");
                EditorGUILayout.LabelField("Playback delay", (device.DelaySeconds * 1000).ToString("F0") + " ms");
                EditorGUILayout.LabelField("Buffered ahead", (device.SecondsBuffered * 1000).ToString("F0") + " ms");
            }
            var c = device.Counters;
            EditorGUILayout.LabelField("Frames received", device.FramesReceived.ToString());
            EditorGUILayout.LabelField("Late (dropped)", c.Late.ToString());
            EditorGUILayout.LabelField("Reordered (used)", c.Reordered.ToString());
            EditorGUILayout.LabelField("Missing (interpolated)", c.Concealed.ToString());
            EditorGUILayout.LabelField("Underruns", c.Underruns.ToString());
            if (c.Late + c.Underruns > 0)
                EditorGUILayout.HelpBox("Frames came too late: raise Jitter Budget Ms.", MessageType.Warning);
            using (new EditorGUILayout.HorizontalScope())
            {
                if (GUILayout.Button("Stop")) device.Stop();
            }
            Repaint();  // live values
        }
    }
}
