using System.Collections.Generic;
using AvatarBridge.Face;
using UnityEditor;
using UnityEngine;

namespace AvatarBridge.Editor
{
    /// <summary>The mapper inspector: settings, plus a check against an avatar (what binds, what is missing).</summary>
    [CustomEditor(typeof(DefaultFaceMapper))]
    sealed class FaceMapperEditor : UnityEditor.Editor
    {
        GameObject avatar;
        string report = "";

        public override void OnInspectorGUI()
        {
            DrawDefaultInspector();
            EditorGUILayout.Space();
            EditorGUILayout.LabelField("Check against an avatar", EditorStyles.boldLabel);
            avatar = (GameObject)EditorGUILayout.ObjectField("Avatar", avatar, typeof(GameObject), true);
            using (new EditorGUI.DisabledScope(avatar == null))
            {
                if (GUILayout.Button("Check")) report = Check((DefaultFaceMapper)target, avatar);
            }
            if (report.Length > 0) EditorGUILayout.HelpBox(report, MessageType.Info);
        }

        static string Check(DefaultFaceMapper mapper, GameObject avatar)
        {
            FaceRigBinding b;
            try
            {
                b = mapper.BindRig(avatar.transform, avatar.GetComponentInChildren<Animator>());
            }
            catch (System.ArgumentException e)
            {
                return "Cannot bind: " + e.Message;
            }
            var lines = new List<string>();
            lines.Add(string.Format("{0} renderer(s), {1} shape bindings, {2}/52 ARKit shapes bound",
                                    b.Renderers.Count, b.Map.Bindings.Count, b.Map.BoundArkitCount));
            for (int i = 0; i < b.Bones.Count; i++)
                lines.Add(AvatarBridge.Core.ArkitNames.Bones[i] + ": " + (b.Bones[i] != null ? b.Bones[i].name : "not found"));
            if (b.Map.UnmatchedShapes.Count > 0)
                lines.Add(b.Map.UnmatchedShapes.Count + " rig shapes left alone (no ARKit match), e.g. " + b.Map.UnmatchedShapes[0]);
            foreach (string w in b.Warnings) lines.Add("Warning: " + w);
            b.Restore();
            return string.Join("\n", lines.ToArray());
        }
    }
}
