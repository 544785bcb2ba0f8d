using AvatarBridge.Transport;
using UnityEditor;
using UnityEngine;

namespace AvatarBridge.Editor
{
    /// <summary>
    /// Closes every gRPC channel still open when play mode ends or scripts reload. Devices close their own in
    /// OnDisable; this catches what they cannot (Enter Play Mode Options without domain reload, user scripts that
    /// open a BridgeChannel themselves) and says so, since a leak there is a bug worth fixing.
    /// </summary>
    [InitializeOnLoad]
    static class PlayModeChannelGuard
    {
        static PlayModeChannelGuard()
        {
            EditorApplication.playModeStateChanged += OnPlayModeChanged;
            AssemblyReloadEvents.beforeAssemblyReload += () => Close("script reload");
        }

        static void OnPlayModeChanged(PlayModeStateChange change)
        {
            if (change == PlayModeStateChange.EnteredEditMode) Close("leaving play mode");
        }

        static void Close(string when)
        {
            int open = ChannelRegistry.ShutdownAll();
            if (open > 0)
                Debug.LogWarning("[Avatar Bridge] " + when + ": closed " + open +
                                 " gRPC channel(s) that were still open (dispose BridgeChannel when done with it)");
        }
    }
}
